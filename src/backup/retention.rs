//! Retention (grandfather-father-son): keep the newest `keep_last` archives, plus the
//! newest archive of each of the last `keep_daily` days and `keep_weekly` ISO weeks
//! that have one (UTC). The newest verified archive is always kept, whatever the
//! policy says. [`plan`] is pure (tested against a simulated calendar); [`prune`]
//! applies it to a directory.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::Serialize;

use super::{BackupError, Entry};
use crate::config::BackupConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

impl From<&BackupConfig> for Policy {
    fn from(c: &BackupConfig) -> Self {
        Policy {
            keep_last: c.keep_last,
            keep_daily: c.keep_daily,
            keep_weekly: c.keep_weekly,
        }
    }
}

/// What retention keeps and deletes (archive names, newest first).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Plan {
    pub keep: Vec<String>,
    pub delete: Vec<String>,
}

/// Decide which of `entries` to keep. `verified` names the archives whose last
/// verification succeeded.
pub fn plan(entries: &[Entry], policy: Policy, verified: &HashSet<String>) -> Plan {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for e in sorted.iter().take(policy.keep_last as usize) {
        keep.insert(&e.name);
    }
    // Newest first, so the first archive seen of a period is that period's newest.
    let mut bucket = |key: fn(&Entry) -> (i32, u32), limit: u32| {
        let mut seen = Vec::new();
        for e in &sorted {
            let k = key(e);
            if !seen.contains(&k) {
                if seen.len() >= limit as usize {
                    break;
                }
                seen.push(k);
                keep.insert(&e.name);
            }
        }
    };
    bucket(
        |e| (e.created_at.year(), u32::from(e.created_at.ordinal())),
        policy.keep_daily,
    );
    bucket(
        |e| {
            let (y, w, _) = e.created_at.to_iso_week_date();
            (y, u32::from(w))
        },
        policy.keep_weekly,
    );
    if let Some(newest_verified) = sorted.iter().find(|e| verified.contains(&e.name)) {
        keep.insert(&newest_verified.name);
    }
    let mut out = Plan::default();
    for e in sorted {
        if keep.contains(e.name.as_str()) {
            out.keep.push(e.name.clone());
        } else {
            out.delete.push(e.name.clone());
        }
    }
    out
}

/// Apply retention to the archives in `dir` (nothing is deleted with `dry_run`).
pub fn prune(
    dir: &Path,
    policy: Policy,
    verified: &HashSet<String>,
    dry_run: bool,
) -> Result<Plan, BackupError> {
    let entries = super::list(dir)?;
    let plan = plan(&entries, policy, verified);
    if !dry_run {
        for name in &plan.delete {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(BackupError::io(path.display().to_string()))?;
            tracing::info!(archive = %name, "backup removed by retention");
        }
        if !plan.delete.is_empty() {
            crate::fsutil::fsync_dir(dir).map_err(BackupError::io(dir.display().to_string()))?;
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{Trigger, archive_name, parse_name};
    use time::{Duration, OffsetDateTime, macros::datetime};

    fn entries(times: &[OffsetDateTime]) -> Vec<Entry> {
        times
            .iter()
            .map(|t| {
                let name = archive_name(*t, Trigger::Scheduled);
                Entry {
                    created_at: parse_name(&name).unwrap().0,
                    name,
                    trigger: Trigger::Scheduled,
                    size_bytes: 1,
                }
            })
            .collect()
    }

    #[test]
    fn simulated_calendar_keeps_last_daily_and_weekly() {
        // Two backups a day (03:17 and 15:17) for 60 days, ending Sunday 2026-11-22.
        let end = datetime!(2026-11-22 15:17 UTC);
        let mut times = Vec::new();
        for d in 0..60 {
            for h in [0, 12] {
                times.push(end - Duration::days(d) - Duration::hours(h));
            }
        }
        let policy = Policy {
            keep_last: 3,
            keep_daily: 5,
            keep_weekly: 4,
        };
        let p = plan(&entries(&times), policy, &HashSet::new());
        let kept: Vec<String> = p
            .keep
            .iter()
            .map(|n| n["appliance-".len().."appliance-".len() + 13].to_string())
            .collect();
        assert_eq!(
            kept,
            vec![
                // keep_last 3: 22 15h, 22 03h, 21 15h.
                "20261122T1517",
                "20261122T0317",
                "20261121T1517",
                // keep_daily 5: the newest of 22, 21 (above) and 20, 19, 18.
                "20261120T1517",
                "20261119T1517",
                "20261118T1517",
                // keep_weekly 4: ISO weeks end on Sundays; the newest of the weeks
                // ending 22 Nov (kept above), 15, 8 and 1 Nov.
                "20261115T1517",
                "20261108T1517",
                "20261101T1517",
            ]
        );
        assert_eq!(p.keep.len() + p.delete.len(), 120);
    }

    #[test]
    fn newest_verified_is_kept_even_outside_the_policy() {
        let end = datetime!(2026-11-22 03:17 UTC);
        let times: Vec<_> = (0..5).map(|h| end - Duration::hours(h)).collect();
        let es = entries(&times);
        let policy = Policy {
            keep_last: 1,
            keep_daily: 0,
            keep_weekly: 0,
        };
        let verified: HashSet<String> = [es[3].name.clone(), es[4].name.clone()].into();
        let p = plan(&es, policy, &verified);
        assert_eq!(p.keep, vec![es[0].name.clone(), es[3].name.clone()]);
        assert_eq!(
            p.delete,
            vec![es[1].name.clone(), es[2].name.clone(), es[4].name.clone()]
        );
    }

    #[test]
    fn prune_deletes_only_archives_and_dry_run_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let end = datetime!(2026-11-22 03:17 UTC);
        let es = entries(&(0..4).map(|d| end - Duration::days(d)).collect::<Vec<_>>());
        for e in &es {
            std::fs::write(dir.path().join(&e.name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("pre-migrate-v1-to-v2-x.db"), b"x").unwrap();
        let policy = Policy {
            keep_last: 2,
            keep_daily: 0,
            keep_weekly: 0,
        };
        let dry = prune(dir.path(), policy, &HashSet::new(), true).unwrap();
        assert_eq!(dry.delete.len(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
        let done = prune(dir.path(), policy, &HashSet::new(), false).unwrap();
        assert_eq!(done, dry);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            es[0].name.clone(),
            es[1].name.clone(),
            "pre-migrate-v1-to-v2-x.db".to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
