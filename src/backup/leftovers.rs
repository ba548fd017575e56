//! What interrupted work leaves behind, found and removed safely: a restore killed while
//! extracting (`.<data>.restore-<time>.tmp` beside the data directory), an index rebuild
//! that never swapped (`index.rebuild/`, `index.old/`), a verification's scratch
//! directory (`.verify-*` in the data directory, or the backups directory of older
//! versions) and a half-written archive
//! (`.appliance-….tmp`). Each of them is removed only when nothing is using it: a
//! restore's staging directory and a verification's scratch are locked by the process
//! that works in them, an archive in progress by the backup lock, and a rebuild runs
//! only in the process that holds the data directory. The live data and a kept
//! `<data>.pre-restore-<time>` directory are never touched; the latter is only reported.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BackupLock;
use crate::fsutil;

/// What a leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A restore's extraction directory whose restore did not finish.
    RestoreStaging,
    /// An index rebuild's new or old index that was not swapped or removed.
    IndexRebuild,
    /// A verification's scratch directory.
    VerifyScratch,
    /// An archive a backup did not finish writing.
    PartialArchive,
    /// The data directory a restore replaced: kept on purpose, never removed here.
    PreRestore,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RestoreStaging => "restore_staging",
            Kind::IndexRebuild => "index_rebuild",
            Kind::VerifyScratch => "verify_scratch",
            Kind::PartialArchive => "partial_archive",
            Kind::PreRestore => "pre_restore",
        }
    }
}

/// One leftover.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub path: PathBuf,
    pub kind: Kind,
    pub bytes: u64,
    /// A process is working in it right now (it is not a leftover yet).
    pub in_use: bool,
}

/// Find leftovers of the data directory `data_dir` and the backups directory
/// `backups_dir`. Read-only. With `own_data_dir` the caller holds the data directory's
/// lock (so no rebuild of another process can be running).
pub fn find(data_dir: &Path, backups_dir: &Path, own_data_dir: bool) -> Vec<Leftover> {
    let mut out = Vec::new();
    let mut add = |path: PathBuf, kind: Kind, in_use: bool| {
        let bytes = fsutil::tree_size(&path);
        out.push(Leftover {
            path,
            kind,
            bytes,
            in_use,
        });
    };
    let data_locked = !own_data_dir && fsutil::held_elsewhere(&data_dir.join("appliance.lock"));
    for name in ["index.rebuild", "index.old"] {
        let p = data_dir.join(name);
        if p.is_dir() {
            add(p, Kind::IndexRebuild, data_locked);
        }
    }
    if let (Some(parent), Some(base)) = (absolute_parent(data_dir), data_dir.file_name()) {
        let base = base.to_string_lossy();
        let staging = format!(".{base}.restore-");
        let aside = format!("{base}.pre-restore-");
        for (name, path) in entries(&parent) {
            if name.starts_with(&staging) && name.ends_with(".tmp") && path.is_dir() {
                let in_use = fsutil::held_elsewhere(&path.join("appliance.lock"));
                add(path, Kind::RestoreStaging, in_use);
            } else if name.starts_with(&aside) && path.is_dir() {
                add(path, Kind::PreRestore, false);
            }
        }
    }
    for (name, path) in entries(data_dir) {
        if name.starts_with(".verify-") && path.is_dir() {
            let in_use = fsutil::held_elsewhere(&path.join(fsutil::CLAIM_FILE));
            add(path, Kind::VerifyScratch, in_use);
        }
    }
    let backup_running = fsutil::held_elsewhere(&backups_dir.join(".backup.lock"));
    for (name, path) in entries(backups_dir) {
        if name.starts_with(".verify-") && path.is_dir() {
            let in_use = fsutil::held_elsewhere(&path.join(fsutil::CLAIM_FILE));
            add(path, Kind::VerifyScratch, in_use);
        } else if name.starts_with(".appliance-") && name.ends_with(".tmp") && path.is_file() {
            add(path, Kind::PartialArchive, backup_running);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// What became of one leftover.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    #[serde(flatten)]
    pub leftover: Leftover,
    pub removed: bool,
    /// Why it stayed (in use, kept on purpose, or the error).
    pub note: Option<String>,
}

/// Remove what [`find`] finds, except what is in use and kept `pre-restore` directories.
/// Each is re-checked under its own lock at the moment it is removed.
pub fn remove(data_dir: &Path, backups_dir: &Path, own_data_dir: bool) -> Vec<Removal> {
    find(data_dir, backups_dir, own_data_dir)
        .into_iter()
        .map(|l| {
            let res = if l.kind == Kind::PreRestore {
                Err("kept: the data directory a restore replaced; delete it once the restore is confirmed".to_string())
            } else if l.in_use {
                Err("in use by a running process".to_string())
            } else {
                remove_one(&l, backups_dir, own_data_dir)
            };
            match &res {
                Ok(()) => tracing::info!(
                    path = %l.path.display(),
                    kind = l.kind.as_str(),
                    bytes = l.bytes,
                    "removed what interrupted work left behind"
                ),
                Err(note) if l.kind != Kind::PreRestore => {
                    tracing::warn!(path = %l.path.display(), kind = l.kind.as_str(), "left in place: {note}")
                }
                Err(_) => {}
            }
            Removal {
                removed: res.is_ok(),
                note: res.err(),
                leftover: l,
            }
        })
        .collect()
}

fn remove_one(l: &Leftover, backups_dir: &Path, own_data_dir: bool) -> Result<(), String> {
    let gone = |r: std::io::Result<()>| r.map_err(|e| format!("cannot remove it: {e}"));
    match l.kind {
        Kind::RestoreStaging => {
            // Lock it as a restore does; a restore that holds it makes this fail.
            let _held = crate::data_dir::DataDir::new(&l.path)
                .lock()
                .map_err(|_| "in use by a running restore".to_string())?;
            gone(std::fs::remove_dir_all(&l.path))
        }
        Kind::VerifyScratch => {
            let f = std::fs::File::open(l.path.join(fsutil::CLAIM_FILE));
            if let Ok(f) = &f
                && f.try_lock().is_err()
            {
                return Err("in use by a running verification".into());
            }
            gone(std::fs::remove_dir_all(&l.path))
        }
        Kind::PartialArchive => {
            let _lock =
                BackupLock::acquire(backups_dir).map_err(|_| "a backup is running".to_string())?;
            gone(std::fs::remove_file(&l.path))
        }
        Kind::IndexRebuild if own_data_dir => gone(std::fs::remove_dir_all(&l.path)),
        Kind::IndexRebuild => Err(
            "the data directory is held by a running server; it removes this at its next start"
                .into(),
        ),
        Kind::PreRestore => Err("kept".into()),
    }
}

fn absolute_parent(dir: &Path) -> Option<PathBuf> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    abs.parent().map(Path::to_path_buf)
}

fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_go_unless_in_use_and_pre_restore_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let backups = data.join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        std::fs::write(data.join("appliance.db"), b"live").unwrap();
        std::fs::create_dir_all(data.join("index.rebuild")).unwrap();
        std::fs::write(data.join("index.rebuild/seg"), vec![0u8; 1000]).unwrap();
        let dead = tmp.path().join(".data.restore-20261207T000000Z.tmp");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("appliance.db"), vec![0u8; 5000]).unwrap();
        let live_restore = tmp.path().join(".data.restore-20261207T010000Z.tmp");
        std::fs::create_dir_all(&live_restore).unwrap();
        let held = crate::data_dir::DataDir::new(&live_restore).lock().unwrap();
        let aside = tmp.path().join("data.pre-restore-20261201T000000Z");
        std::fs::create_dir_all(&aside).unwrap();
        let scratch = backups.join(".verify-abc");
        std::fs::create_dir_all(&scratch).unwrap();
        let busy_scratch = backups.join(".verify-def");
        std::fs::create_dir_all(&busy_scratch).unwrap();
        let claim = fsutil::claim(&busy_scratch).unwrap();
        std::fs::write(backups.join(".appliance-x.tar.zst.1.tmp"), b"half").unwrap();
        std::fs::write(backups.join("mine.txt"), b"not ours").unwrap();

        let found = find(&data, &backups, false);
        let kinds: Vec<(&str, bool)> = found.iter().map(|l| (l.kind.as_str(), l.in_use)).collect();
        assert_eq!(found.len(), 7, "{kinds:?}");
        let dead_found = found.iter().find(|l| l.path == dead).unwrap();
        assert_eq!((dead_found.bytes, dead_found.in_use), (5000, false));
        assert!(found.iter().any(|l| l.path == live_restore && l.in_use));
        assert!(found.iter().any(|l| l.path == busy_scratch && l.in_use));

        // Another process holds the data directory: its rebuild stays.
        let removed = remove(&data, &backups, false);
        assert!(data.join("index.rebuild").exists());
        assert!(!dead.exists() && !scratch.exists());
        assert!(!backups.join(".appliance-x.tar.zst.1.tmp").exists());
        assert!(live_restore.exists() && busy_scratch.exists() && aside.exists());
        assert!(backups.join("mine.txt").exists() && data.join("appliance.db").exists());
        assert_eq!(removed.iter().filter(|r| r.removed).count(), 3);

        // The owner of the data directory removes the rebuild; what is in use stays.
        remove(&data, &backups, true);
        assert!(!data.join("index.rebuild").exists());
        assert!(live_restore.exists() && busy_scratch.exists() && aside.exists());
        drop((held, claim));
        remove(&data, &backups, true);
        assert!(!live_restore.exists() && !busy_scratch.exists());
        assert!(
            aside.exists(),
            "a kept pre-restore directory is never removed"
        );
    }
}
