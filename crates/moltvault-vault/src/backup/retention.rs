//! Retention: which backups a `--keep-*` policy keeps, and a prune that deletes only once a
//! newer backup has been verified end to end.

use std::collections::BTreeSet;

use time::{OffsetDateTime, PrimitiveDateTime};

use super::{BACKUP_SUFFIX, BackupError, BackupTarget, Progress, list_backups, verify};

/// A backup found on a target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupInfo {
    /// Its object name.
    pub name: String,
    /// The host it came from.
    pub host: String,
    /// When it was made (UTC, from the name).
    #[serde(serialize_with = "ser_time")]
    pub time: OffsetDateTime,
    /// Its size in bytes.
    pub size: u64,
}

fn ser_time<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let v = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&v)
}

/// Parses `moltvault-<host>-<YYYYMMDDTHHMMSSZ>.tar.zst.age`.
///
/// # Errors
/// Fails with [`BackupError::BadName`] if the name does not have that shape.
pub fn parse_backup_name(name: &str) -> Result<BackupInfo, BackupError> {
    let bad = || BackupError::BadName(name.to_string());
    let core = name
        .strip_prefix("moltvault-")
        .and_then(|s| s.strip_suffix(BACKUP_SUFFIX))
        .ok_or_else(bad)?;
    let (host, ts) = core.rsplit_once('-').ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = PrimitiveDateTime::parse(ts, &fmt).map_err(|_| bad())?;
    Ok(BackupInfo {
        name: name.to_string(),
        host: host.to_string(),
        time: t.assume_utc(),
        size: 0,
    })
}

/// How many backups to keep, restic-style: each rule keeps the newest backup of each of the
/// last N periods that have one; a backup kept by any rule is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Keep the N newest backups.
    pub last: usize,
    /// Keep the newest backup of each of the last N days.
    pub daily: usize,
    /// Keep the newest backup of each of the last N ISO weeks.
    pub weekly: usize,
    /// Keep the newest backup of each of the last N months.
    pub monthly: usize,
}

impl KeepPolicy {
    /// Whether the policy keeps nothing at all (refused: it would delete every backup).
    pub fn is_empty(&self) -> bool {
        self.last == 0 && self.daily == 0 && self.weekly == 0 && self.monthly == 0
    }
}

/// Splits backups into (keep, delete) under `policy`; both sorted oldest first.
pub fn plan_prune(
    backups: &[BackupInfo],
    policy: KeepPolicy,
) -> (Vec<BackupInfo>, Vec<BackupInfo>) {
    let mut newest_first: Vec<&BackupInfo> = backups.iter().collect();
    newest_first.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for b in newest_first.iter().take(policy.last) {
        keep.insert(&b.name);
    }
    type PeriodKey = fn(&OffsetDateTime) -> (i32, u32);
    let buckets: [(usize, PeriodKey); 3] = [
        (policy.daily, |t| (t.year(), t.ordinal() as u32)),
        (policy.weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w as u32)
        }),
        (policy.monthly, |t| (t.year(), t.month() as u32)),
    ];
    for (n, key) in buckets {
        let mut seen = BTreeSet::new();
        for b in &newest_first {
            if seen.len() >= n {
                break;
            }
            if seen.insert(key(&b.time)) {
                keep.insert(&b.name);
            }
        }
    }
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for b in backups {
        if keep.contains(b.name.as_str()) {
            kept.push(b.clone());
        } else {
            deleted.push(b.clone());
        }
    }
    kept.sort_by_key(|a| a.time);
    deleted.sort_by_key(|a| a.time);
    (kept, deleted)
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneReport {
    /// Backups kept by the policy.
    pub kept: Vec<BackupInfo>,
    /// Backups deleted (or that would be, on a dry run).
    pub deleted: Vec<BackupInfo>,
    /// The newest backup that was verified before anything was deleted.
    pub verified: Option<String>,
    /// Whether this was a dry run (nothing verified, nothing deleted).
    pub dry_run: bool,
}

/// Applies `policy` to the backups on `target`.
///
/// Before deleting anything it verifies (decrypts, decompresses, checks every hash) the newest
/// backup, falling back to older kept ones; it deletes only backups older than the one that
/// verified. On a dry run it verifies and deletes nothing; `identity` may then be `None`.
///
/// # Errors
/// Fails with [`BackupError::NothingVerified`] if no kept backup verifies (nothing is deleted
/// then), or if listing or deleting fails (backups deleted before the failure stay deleted;
/// the others are untouched).
pub fn prune(
    target: &dyn BackupTarget,
    identity: Option<&dyn age::Identity>,
    policy: KeepPolicy,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PruneReport, BackupError> {
    let all = list_backups(target)?;
    let (kept, candidates) = plan_prune(&all, policy);
    if dry_run || candidates.is_empty() {
        return Ok(PruneReport {
            kept,
            deleted: candidates,
            verified: None,
            dry_run,
        });
    }
    let Some(identity) = identity else {
        return Err(BackupError::NothingVerified {
            source: Box::new(BackupError::Manifest {
                reason: "no identity was given to verify with".into(),
            }),
        });
    };
    let mut last_err = None;
    let mut verified = None;
    for b in kept.iter().rev() {
        match verify(target, &b.name, identity, progress) {
            Ok(_) => {
                verified = Some(b.clone());
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some(v) = verified else {
        return Err(BackupError::NothingVerified {
            source: Box::new(last_err.unwrap_or(BackupError::NotFound("any backup".into()))),
        });
    };
    let (deletable, too_new): (Vec<_>, Vec<_>) =
        candidates.into_iter().partition(|b| b.time < v.time);
    for b in &deletable {
        target.delete(&b.name)?;
    }
    let mut kept = kept;
    kept.extend(too_new);
    kept.sort_by_key(|a| a.time);
    Ok(PruneReport {
        kept,
        deleted: deletable,
        verified: Some(v.name),
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ts: &str) -> BackupInfo {
        parse_backup_name(&format!("moltvault-my-host-{ts}.tar.zst.age")).unwrap()
    }

    #[test]
    fn names_round_trip() {
        let t = time::macros::datetime!(2026-11-25 20:05:12 UTC);
        let n = super::super::backup_name("my host/x", t);
        assert_eq!(n, "moltvault-my_host_x-20261125T200512Z.tar.zst.age");
        let info = parse_backup_name(&n).unwrap();
        assert_eq!(info.host, "my_host_x");
        assert_eq!(info.time, t);
        assert!(parse_backup_name("moltvault-20261125T200512Z.tar.zst.age").is_err());
        assert!(parse_backup_name("other.tar.zst.age").is_err());
    }

    #[test]
    fn policy_keeps_newest_per_period() {
        let all = vec![
            b("20261001T010000Z"),
            b("20261101T010000Z"),
            b("20261120T010000Z"),
            b("20261124T010000Z"),
            b("20261124T120000Z"),
            b("20261125T010000Z"),
            b("20261125T020000Z"),
        ];
        let names = |v: &[BackupInfo]| {
            v.iter()
                .map(|b| b.name[18..33].to_string())
                .collect::<Vec<_>>()
        };
        let (keep, del) = plan_prune(
            &all,
            KeepPolicy {
                last: 1,
                daily: 2,
                ..Default::default()
            },
        );
        assert_eq!(names(&keep), ["20261124T120000", "20261125T020000"]);
        assert_eq!(del.len(), 5);
        let (keep, _) = plan_prune(
            &all,
            KeepPolicy {
                monthly: 3,
                ..Default::default()
            },
        );
        // 2026-11-01 shares its month with the newer 2026-11-25.
        assert_eq!(names(&keep), ["20261001T010000", "20261125T020000"]);
        let (keep, _) = plan_prune(
            &all,
            KeepPolicy {
                weekly: 2,
                ..Default::default()
            },
        );
        // 2026-11-20 is a Friday (ISO week 47); 24 and 25 are in week 48.
        assert_eq!(names(&keep), ["20261120T010000", "20261125T020000"]);
        let (keep, del) = plan_prune(
            &all,
            KeepPolicy {
                last: 100,
                ..Default::default()
            },
        );
        assert_eq!((keep.len(), del.len()), (7, 0));
    }
}
