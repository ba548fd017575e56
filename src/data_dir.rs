//! The data directory: one type that owns every path under it (database, index,
//! backups, lock file) and creates the structure, plus the exclusive lock that `serve`
//! (and `restore`, `migrate run`) hold for their lifetime. Nothing here opens SQLite.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Permissions of directories the appliance creates: owner rwx, group rx, others none.
const DIR_MODE: u32 = 0o750;

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "data directory {dir} is in use by another appliance process (pid {pid}); stop it first (systemctl stop appliance)"
    )]
    Locked { dir: PathBuf, pid: String },
    #[error("cannot use data directory {dir}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The SQLite database, the single source of truth.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("appliance.db")
    }
    /// The database's write-ahead log (beside it; absent after a clean shutdown).
    pub fn wal_path(&self) -> PathBuf {
        self.root.join("appliance.db-wal")
    }
    /// The full-text index (rebuildable from the database).
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }
    /// Backups and pre-migration copies.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }
    /// The lock file; it holds the pid of the process that owns the directory.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("appliance.lock")
    }

    /// Create the directory tree (mode 0750) if it is missing.
    pub fn create(&self) -> Result<(), DataDirError> {
        for dir in [self.root.clone(), self.backups_dir()] {
            create_private_dir(&dir).map_err(|source| self.io(source))?;
        }
        Ok(())
    }

    /// Take the exclusive lock, or say who holds it. The lock is an `flock` on
    /// `appliance.lock`, released by the kernel when the process dies, so a crash never
    /// leaves a stale lock behind.
    pub fn lock(&self) -> Result<DataDirLock, DataDirError> {
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| self.io(source))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::Locked {
                    dir: self.root.clone(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                });
            }
            Err(TryLockError::Error(source)) => return Err(self.io(source)),
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write_pid(&mut file).map_err(|source| self.io(source))?;
        Ok(DataDirLock { _file: file })
    }

    /// Lock file that pairs index commits with backups. An index commit, together with
    /// the removal of the outbox rows it applied, holds it shared; a backup holds it
    /// exclusively for the moment it takes the index files and starts its database
    /// read transaction, so the two copies describe the same outbox position.
    pub fn index_commit_lock_path(&self) -> PathBuf {
        self.root.join("index-commit.lock")
    }

    /// Take the index-commit lock (blocking): shared for an index commit, exclusive for
    /// a backup's snapshot. `flock` works between processes (the CLI backup beside
    /// `serve`) and between threads of one process alike; dropping the guard releases it.
    pub fn index_commit_guard(&self, exclusive: bool) -> std::io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.index_commit_lock_path())?;
        if exclusive {
            file.lock()?;
        } else {
            file.lock_shared()?;
        }
        Ok(file)
    }

    fn io(&self, source: std::io::Error) -> DataDirError {
        DataDirError::Io {
            dir: self.root.clone(),
            source,
        }
    }
}

/// Create `dir` (and its parents) with mode 0750 if it is missing; an existing
/// directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        // The umask may have narrowed the mode further; never widen an existing dir.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Held while a process owns the data directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_dir_and_pid_then_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::new(tmp.path().join("data"));
        dd.create().unwrap();
        let lock = dd.lock().unwrap();
        let err = dd.lock().unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains(&dd.root().display().to_string()), "{err}");
        drop(lock);
        dd.lock().expect("lock is free again after drop");
    }

    #[test]
    fn create_makes_private_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::new(tmp.path().join("a/b"));
        dd.create().unwrap();
        let mode = std::fs::metadata(dd.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        assert!(dd.backups_dir().is_dir());
    }
}
