//! Best-effort detection of a running gateway.
//!
//! The heuristic (Linux, reads `/proc`; nothing is locked, opened for writing or signalled):
//! 1. **Processes**: a process other than this one whose command line names
//!    `openclaw`/`clawdbot`/`moltbot` together with `gateway` (argv `… openclaw … gateway`, or
//!    a process title such as `openclaw-gateway`). When that process's environment is readable
//!    and proves it serves another directory, it belongs to another gateway (another user's,
//!    or another `HOME`'s on the same host) and is ignored: either
//!    `OPENCLAW_STATE_DIR`/`CLAWDBOT_STATE_DIR`/`MOLTBOT_STATE_DIR` names a different directory,
//!    or none is set and none of the default dirs under its `OPENCLAW_HOME` (else `HOME`) —
//!    `.openclaw`, `.openclaw-<OPENCLAW_PROFILE>`, `.clawdbot`, `.moltbot`, `.moldbot` — is
//!    this one. An unreadable environment counts as this gateway's.
//! 2. **Session write locks**: a `<transcript>.jsonl.lock` whose pid is alive.
//! 3. **Held file locks** (from `/proc/locks`, matched by device and inode): on the agent databases' and
//!    `state/openclaw.sqlite`'s `-shm` files (every open SQLite connection in WAL mode holds a
//!    lock there), on the 2026.9 lock files in `<state>/tmp/openclaw-<uid>/` and on those in
//!    the host-wide `<tmp>/openclaw-state-locks-<uid>/` named after one of this state dir's
//!    databases (`<family>.<first 8 hex digits of SHA-256 of its canonical path>.lock.sqlite`),
//!    so another gateway's locks there do not count.
//!
//! False positives: a `openclaw gateway status` command running at the same moment, or another
//! tool holding the database open. False negatives: a gateway in another PID namespace
//! (container) that has no lock on these files yet. Treat `true` as "stop the gateway first".

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::discover::Gateway;
use crate::sessions::lock_state;
use crate::transcripts::TranscriptKind;

/// Why [`Gateway::is_running`] thinks the gateway runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningEvidence {
    /// Gateway processes: `(pid, program name)` (never the full command line, which can hold
    /// a token).
    pub processes: Vec<(u32, String)>,
    /// Transcripts whose `.lock` names a live pid.
    pub locked_transcripts: Vec<PathBuf>,
    /// Files on which some process holds a lock.
    pub held_locks: Vec<PathBuf>,
}

impl RunningEvidence {
    /// Whether any evidence was found.
    pub fn any(&self) -> bool {
        !(self.processes.is_empty()
            && self.locked_transcripts.is_empty()
            && self.held_locks.is_empty())
    }
}

impl Gateway {
    /// Returns whether the gateway seems to be running (see the module docs for the heuristic).
    pub fn is_running(&self) -> bool {
        self.running_evidence().any()
    }

    /// Collects the evidence [`Gateway::is_running`] decides on.
    pub fn running_evidence(&self) -> RunningEvidence {
        let mut ev = RunningEvidence {
            processes: gateway_processes(&self.state_dir),
            ..RunningEvidence::default()
        };
        if let Ok(files) = self.transcript_files() {
            ev.locked_transcripts = files
                .into_iter()
                .filter(|f| f.kind == TranscriptKind::Jsonl && lock_state(&f.path).is_held())
                .map(|f| f.path)
                .collect();
        }
        let mut dbs = self.agent_dbs();
        dbs.push(self.state_dir.join("state/openclaw.sqlite"));
        // The shared lock dir names each lock `<family>.<hash>.lock.sqlite`, the hash being the
        // first 8 hex digits of SHA-256 over the database's canonical path: only ours count.
        let ours: Vec<String> = dbs
            .iter()
            .filter_map(|db| fs::canonicalize(db).ok())
            .map(|p| hex::encode(Sha256::digest(p.as_os_str().as_bytes()))[..8].to_owned())
            .collect();
        let mut candidates: Vec<PathBuf> = Vec::new();
        for db in dbs {
            candidates.push(PathBuf::from(format!("{}-shm", db.display())));
            candidates.push(db);
        }
        let uid = rustix::process::getuid().as_raw();
        let own_dir = self.state_dir.join(format!("tmp/openclaw-{uid}"));
        for e in fs::read_dir(&own_dir).into_iter().flatten().flatten() {
            candidates.push(e.path());
        }
        let shared = self.tmp_dir.join(format!("openclaw-state-locks-{uid}"));
        for e in fs::read_dir(&shared).into_iter().flatten().flatten() {
            let name = e.file_name();
            let hash = name.to_str().and_then(|n| n.split('.').nth(1));
            if hash.is_some_and(|h| ours.iter().any(|o| o == h)) {
                candidates.push(e.path());
            }
        }
        let locked = locked_files();
        ev.held_locks = candidates
            .into_iter()
            .filter(|p| {
                fs::symlink_metadata(p)
                    .map(|m| m.is_file() && is_locked(&locked, m.dev(), m.ino()))
                    .unwrap_or(false)
            })
            .collect();
        ev
    }
}

/// `(major, minor, inode)` of every lock in `/proc/locks`
/// (`1: POSIX ADVISORY WRITE <pid> <maj>:<min>:<ino> …`, major and minor in hex).
fn locked_files() -> Vec<(u32, u32, u64)> {
    let Ok(text) = fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f = l.split_whitespace().find(|f| f.matches(':').count() == 2)?;
            let mut it = f.split(':');
            let major = u32::from_str_radix(it.next()?, 16).ok()?;
            let minor = u32::from_str_radix(it.next()?, 16).ok()?;
            let ino = it.next()?.parse().ok()?;
            Some((major, minor, ino))
        })
        .collect()
}

/// Whether a file is locked: same device and inode. Files on anonymous-device filesystems
/// (major 0: overlayfs in containers) can be locked under the underlying device's number, so
/// there the inode alone decides.
fn is_locked(locked: &[(u32, u32, u64)], dev: u64, ino: u64) -> bool {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    locked
        .iter()
        .any(|&(ma, mi, i)| i == ino && (major == 0 || (ma, mi) == (major, minor)))
}

fn gateway_processes(state_dir: &Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_lowercase())
            .collect();
        let names = ["openclaw", "clawdbot", "moltbot"];
        let named = args.iter().any(|a| names.iter().any(|n| a.contains(n)));
        let gateway = args
            .iter()
            .any(|a| a == "gateway" || names.iter().any(|n| a.contains(&format!("{n}-gateway"))));
        if !(named && gateway) {
            continue;
        }
        if let Ok(env) = fs::read(e.path().join("environ"))
            && serves_another_dir(&env, state_dir)
        {
            continue;
        }
        // Only the program name: other arguments can carry tokens (`--token …`).
        let prog = args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
            .unwrap_or_default();
        out.push((pid, prog));
    }
    out
}

/// The variables that name a gateway's state dir outright.
const STATE_DIR_VARS: [&str; 3] = [
    "OPENCLAW_STATE_DIR=",
    "CLAWDBOT_STATE_DIR=",
    "MOLTBOT_STATE_DIR=",
];

/// Whether a gateway process whose environment (`/proc/<pid>/environ`, NUL-separated) is `env`
/// provably serves a directory other than `ours` (see the module docs).
fn serves_another_dir(env: &[u8], ours: &Path) -> bool {
    let same = |p: &Path| {
        let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canon(p) == canon(ours)
    };
    let (mut named, mut home, mut oc_home, mut profile) = (Vec::new(), None, None, None);
    for kv in env.split(|b| *b == 0) {
        let kv = String::from_utf8_lossy(kv);
        if let Some(v) = STATE_DIR_VARS.iter().find_map(|k| kv.strip_prefix(k)) {
            named.push(PathBuf::from(v));
        } else if let Some(v) = kv.strip_prefix("OPENCLAW_HOME=") {
            oc_home = Some(PathBuf::from(v));
        } else if let Some(v) = kv.strip_prefix("HOME=") {
            home = Some(PathBuf::from(v));
        } else if let Some(v) = kv.strip_prefix("OPENCLAW_PROFILE=") {
            profile = Some(v.to_string());
        }
    }
    if !named.is_empty() {
        return named.iter().any(|p| !same(p));
    }
    let Some(base) = oc_home.or(home).filter(|b| b.is_absolute()) else {
        return false;
    };
    let mut defaults = vec![
        ".openclaw".to_string(),
        ".clawdbot".into(),
        ".moltbot".into(),
        ".moldbot".into(),
    ];
    if let Some(p) = profile.filter(|p| !p.is_empty() && !p.contains('/')) {
        defaults.push(format!(".openclaw-{p}"));
    }
    !defaults.iter().any(|d| same(&base.join(d)))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use moltvault_testutils::homes::{SampleLine, TestHome};
    use rustix::fs::{FlockOperation, flock};

    /// The shared lock dir's name for a lock of the database at `db`.
    fn lock_name(family: &str, db: &Path) -> String {
        let canon = fs::canonicalize(db).unwrap();
        let hash = hex::encode(Sha256::digest(canon.as_os_str().as_bytes()));
        format!("{family}.{}.lock.sqlite", &hash[..8])
    }

    /// Creates a lock file in `dir`, held (an advisory lock this process keeps while the
    /// returned file is open) or left behind by a dead holder (no lock on it).
    fn lock_file(dir: &Path, name: &str, held: bool) -> (PathBuf, Option<fs::File>) {
        let p = dir.join(name);
        let f = fs::File::create(&p).unwrap();
        if held {
            flock(&f, FlockOperation::NonBlockingLockExclusive).unwrap();
            (p, Some(f))
        } else {
            (p, None)
        }
    }

    #[test]
    fn only_this_state_dirs_locks_in_the_shared_lock_dir_count() {
        let home = TestHome::new(SampleLine::OpenClaw2026_9_6);
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = crate::DiscoverOptions::new(home.home());
        opts.state_dir = Some(home.state_dir().to_path_buf());
        opts.tmp_dir = Some(tmp.path().to_path_buf());
        let gw = crate::discover(&opts).unwrap();
        let db = gw
            .agent_dbs()
            .pop()
            .expect("the sample has an agent database");
        let uid = rustix::process::getuid().as_raw();
        let shared = tmp.path().join(format!("openclaw-state-locks-{uid}"));
        fs::create_dir_all(&shared).unwrap();
        let held = |ev: &RunningEvidence| -> Vec<String> {
            ev.held_locks
                .iter()
                .filter(|p| p.starts_with(&shared))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };

        // Another state dir's database, locked by a live gateway: not ours.
        let other = tmp.path().join("other/openclaw-agent.sqlite");
        fs::create_dir_all(other.parent().unwrap()).unwrap();
        fs::write(&other, b"").unwrap();
        let (_, _other_lock) = lock_file(&shared, &lock_name("generation-writer", &other), true);
        // A name that does not follow `<family>.<hash>.lock.sqlite` is ignored as well.
        let (_, _odd) = lock_file(&shared, "unrelated.lock.sqlite", true);
        assert_eq!(held(&gw.running_evidence()), Vec::<String>::new());

        // A lock of our database left by a dead holder (the file stays, nobody holds a lock
        // on it): stale, does not count.
        let ours = lock_name("generation-writer", &db);
        let (p, _) = lock_file(&shared, &ours, false);
        assert_eq!(held(&gw.running_evidence()), Vec::<String>::new());
        fs::remove_file(&p).unwrap();

        // The same name, held by a live process: the gateway runs.
        let (_, guard) = lock_file(&shared, &ours, true);
        assert_eq!(held(&gw.running_evidence()), vec![ours.clone()]);
        assert!(gw.is_running());
        // Released: stale again.
        drop(guard);
        assert_eq!(held(&gw.running_evidence()), Vec::<String>::new());
    }

    fn env(vars: &[&str]) -> Vec<u8> {
        vars.join("\0").into_bytes()
    }

    #[test]
    fn a_process_serving_another_dir_is_told_apart_from_ours() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let other = t.path().join("other");
        let ours = home.join(".openclaw");
        fs::create_dir_all(&ours).unwrap();
        fs::create_dir_all(other.join(".openclaw")).unwrap();
        let h = |p: &Path| format!("HOME={}", p.display());
        let sd = |p: &Path| format!("OPENCLAW_STATE_DIR={}", p.display());
        // Default dir under its HOME: ours, or not.
        assert!(!serves_another_dir(&env(&[&h(&home)]), &ours));
        assert!(serves_another_dir(&env(&[&h(&other)]), &ours));
        // An explicit state dir decides, whatever HOME says.
        assert!(!serves_another_dir(&env(&[&h(&other), &sd(&ours)]), &ours));
        assert!(serves_another_dir(&env(&[&h(&home), &sd(&other)]), &ours));
        // OPENCLAW_HOME replaces HOME; a profile adds `.openclaw-<name>`.
        let oh = format!("OPENCLAW_HOME={}", home.display());
        assert!(!serves_another_dir(&env(&[&h(&other), &oh]), &ours));
        let prof = home.join(".openclaw-work");
        fs::create_dir_all(&prof).unwrap();
        assert!(!serves_another_dir(
            &env(&[&h(&home), "OPENCLAW_PROFILE=work"]),
            &prof
        ));
        // Nothing to go on: counts as ours.
        assert!(!serves_another_dir(&env(&[]), &ours));
        assert!(!serves_another_dir(&env(&["HOME=relative"]), &ours));
    }
}
