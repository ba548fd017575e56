//! Durable file operations: a file that other code may read after a crash is written
//! under a temporary name, fsynced, renamed into place, and its directory fsynced.
//! Nothing here knows about SQLite or archives.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// fsync a directory so that a rename or create inside it survives a power cut.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The temporary name used while `final_path` is being written: same directory (so the
/// rename is atomic), hidden, and ending in `.tmp` so clean-up can recognise it.
pub fn temp_path_for(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// fsync `tmp`, rename it to `final_path`, fsync the directory. On failure `tmp` is
/// removed and `final_path` is untouched.
pub fn persist(tmp: &Path, final_path: &Path) -> io::Result<()> {
    let result = (|| {
        File::open(tmp)?.sync_all()?;
        std::fs::rename(tmp, final_path)?;
        if let Some(dir) = final_path.parent() {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Space on the file system that holds a path: what an unprivileged writer may still
/// use (`free`, as `df` shows it), the size, and the inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub free: u64,
    pub total: u64,
    pub inodes_free: u64,
    pub inodes_total: u64,
}

impl DiskSpace {
    /// How full the file system is, 0..100 (None for a size of 0).
    pub fn used_percent(&self) -> Option<f64> {
        (self.total > 0)
            .then(|| 100.0 * self.total.saturating_sub(self.free) as f64 / self.total as f64)
    }
}

/// The one reading of free space (health, alerts, metrics, doctor, backups, the
/// dashboard): `statvfs(2)` on `path`.
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    let s = rustix::fs::statvfs(path)?;
    Ok(DiskSpace {
        free: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
        inodes_free: s.f_favail,
        inodes_total: s.f_files,
    })
}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Give `path` and everything under it to `uid:gid` (symlinks themselves, not their
/// targets). Used when root restores into a directory a service user owns.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Bytes of the files under `path` (a file's own size for a file); what cannot be read
/// counts as nothing.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// The name of the claim file [`claim`] holds inside a work directory.
pub const CLAIM_FILE: &str = ".claim";

/// Claim a work directory for this process (an exclusive `flock` on `<dir>/.claim`,
/// released when the returned file is dropped or the process dies), so that clean-up
/// can tell a directory in use from one left by a process that was killed.
pub fn claim(dir: &Path) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(CLAIM_FILE))?;
    f.lock()?;
    Ok(f)
}

/// Whether another open file holds the `flock` of `lock_file` (false when it does not
/// exist). The test takes the lock for an instant and releases it.
pub fn held_elsewhere(lock_file: &Path) -> bool {
    match File::open(lock_file) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Size of a file; none when it is absent or unreadable.
pub fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_moves_into_place_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.db");
        let tmp = temp_path_for(&target);
        std::fs::write(&tmp, b"hello").unwrap();
        persist(&tmp, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        assert!(!tmp.exists());
    }

    #[test]
    fn persist_failure_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".t.tmp");
        std::fs::write(&tmp, b"x").unwrap();
        let target = dir.path().join("missing-dir").join("x.db");
        assert!(persist(&tmp, &target).is_err());
        assert!(!tmp.exists());
    }
}
