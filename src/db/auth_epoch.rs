//! Telling every process at once that what an API token's verification depends on may
//! have changed, so that a server can remember the tokens it verified (see
//! `http::token_cache`) instead of looking each one up in SQLite per request — and
//! still refuse a token from the very next request on once it is revoked, its role
//! lowered or its user disabled, here or in another process (`appliance token revoke`
//! while the server runs).
//!
//! - **The database counts the changes.** Triggers (migration V6) move `auth_epoch.n`
//!   on every change to a token (but its `last_used_at`) or a user, whoever makes it.
//! - **Every process announces them.** Its writer reads the counter after each commit
//!   and, when it moved, writes a new random value into the marker file `<db>-auth`
//!   *before* it answers the caller. A check every second in the server
//!   ([`AuthEpoch::recheck`]) does the same for changes no writer saw (a process that
//!   died between its commit and the marker, a hand-made SQL edit).
//! - **A server reads the marker before trusting what it remembers** (one `pread` on a
//!   descriptor it keeps open): a value it has not seen starts a new generation, and
//!   whatever was verified in an older generation is looked up again.
//!
//! The marker is a signal between running processes, not data: it is written in place
//! (readers keep it open) and never fsynced, because after a crash every process starts
//! with nothing remembered.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use rusqlite::Connection;

/// The counter the triggers move; an error when the table does not exist yet (before
/// migration V6).
pub fn read(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT n FROM auth_epoch WHERE id = 1")?
        .query_row([], |r| r.get(0))
}

/// The marker file of the database at `db_path` (`appliance.db` → `appliance.db-auth`,
/// beside SQLite's own `-wal` and `-shm`).
pub fn marker_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-auth");
    PathBuf::from(name)
}

pub struct AuthEpoch {
    db_path: PathBuf,
    marker: PathBuf,
    /// The counter as this process last announced it (`None`: unknown or unreadable).
    announced: Mutex<Option<i64>>,
    /// The marker, open for reading, with its (device, inode).
    file: RwLock<Option<(File, (u64, u64))>>,
    /// The marker value the current generation began with.
    seen: AtomicU64,
    generation: AtomicU64,
    /// Whether the marker's trouble has been logged (once, until it is fixed).
    warned: AtomicBool,
}

impl AuthEpoch {
    /// For the database at `db_path`, whose counter reads `counter` now. Creates the
    /// marker when it is missing; a marker that cannot be opened only means that
    /// nothing is ever trusted from memory ([`AuthEpoch::generation`] is `None`).
    pub fn open(db_path: &Path, counter: Option<i64>) -> AuthEpoch {
        let epoch = AuthEpoch {
            db_path: db_path.to_path_buf(),
            marker: marker_path(db_path),
            announced: Mutex::new(counter),
            file: RwLock::new(None),
            seen: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        };
        epoch.reopen_or_warn();
        epoch
    }

    fn reopen_or_warn(&self) {
        match self.reopen() {
            Ok(()) => self.warned.store(false, Ordering::SeqCst),
            Err(e) => {
                *self.file.write().unwrap_or_else(|p| p.into_inner()) = None;
                if !self.warned.swap(true, Ordering::SeqCst) {
                    tracing::warn!(marker = %self.marker.display(), error = %e,
                        "cannot open the token-change marker: API tokens are looked up on every request until it can be");
                }
            }
        }
    }

    /// Open the marker (creating it with a fresh value if it is missing) and start a new
    /// generation.
    fn reopen(&self) -> io::Result<()> {
        let file = match OpenOptions::new().read(true).open(&self.marker) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.announce()?;
                File::open(&self.marker)?
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let mut slot = self.file.write().unwrap_or_else(|p| p.into_inner());
        *slot = Some((file, (meta.dev(), meta.ino())));
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Write a value no process has seen into the marker. One that root creates is
    /// given to the database's owner, as SQLite does with `-wal` and `-shm`, so that the
    /// server's user can still read it.
    fn announce(&self) -> io::Result<()> {
        let created = !self.marker.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.marker)?;
        if created
            && crate::fsutil::running_as_root()
            && let Ok(db) = std::fs::metadata(&self.db_path)
        {
            std::os::unix::fs::fchown(&file, Some(db.uid()), Some(db.gid()))?;
        }
        file.write_all_at(&rand::random::<u64>().to_le_bytes(), 0)
    }

    /// After a commit (or a read of the counter): announce when the counter moved since
    /// this process last announced it. Until an announcement succeeds the next call
    /// tries again.
    pub fn observe(&self, counter: Option<i64>) {
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if *announced == counter {
            return;
        }
        match self.announce() {
            Ok(()) => *announced = counter,
            Err(e) => {
                if !self.warned.swap(true, Ordering::SeqCst) {
                    tracing::warn!(marker = %self.marker.display(), error = %e,
                        "cannot announce a change of users or API tokens; a running server notices it within a second");
                }
            }
        }
    }

    /// The current generation: remembered verifications from any other generation must
    /// not be trusted. Reads the marker (one `pread`); `None` when it cannot, and then
    /// nothing may be trusted or remembered.
    pub fn generation(&self) -> Option<u64> {
        let mut buf = [0u8; 8];
        let read = {
            let slot = self.file.read().unwrap_or_else(|p| p.into_inner());
            slot.as_ref()
                .map(|(f, _)| f.read_exact_at(&mut buf, 0).is_ok())
                .unwrap_or(false)
        };
        if !read {
            return None;
        }
        let value = u64::from_le_bytes(buf);
        if self.seen.load(Ordering::SeqCst) != value {
            // New generation first, then the value: whoever sees the value already
            // recorded also sees the generation that followed it.
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.seen.store(value, Ordering::SeqCst);
        }
        Some(self.generation.load(Ordering::SeqCst))
    }

    /// The server's check every second: announce what no writer announced (`counter`
    /// is the counter read now), and reopen a marker that was deleted or replaced.
    pub fn recheck(&self, counter: Option<i64>) {
        self.observe(counter);
        let current = std::fs::metadata(&self.marker)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let open = self
            .file
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, id)| *id);
        if current.is_none() || current != open {
            self.reopen_or_warn();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_announced_by_another_process_starts_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let server = AuthEpoch::open(&db, Some(0));
        let cli = AuthEpoch::open(&db, Some(0));
        let g = server.generation().unwrap();
        assert_eq!(server.generation(), Some(g), "nothing changed");
        cli.observe(Some(0));
        assert_eq!(server.generation(), Some(g), "the counter did not move");
        cli.observe(Some(1));
        let g2 = server.generation().unwrap();
        assert!(g2 > g, "the other process's announcement is seen");
        assert_eq!(server.generation(), Some(g2));
    }

    #[test]
    fn a_deleted_marker_is_recreated_and_distrusted_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let server = AuthEpoch::open(&db, Some(3));
        let g = server.generation().unwrap();
        std::fs::remove_file(marker_path(&db)).unwrap();
        // Another process recreates it: the server's descriptor still names the old
        // file, until its recheck opens the new one.
        let cli = AuthEpoch::open(&db, Some(3));
        cli.observe(Some(4));
        server.recheck(Some(4));
        let g2 = server.generation().unwrap();
        assert!(g2 > g);
        cli.observe(Some(5));
        assert!(
            server.generation().unwrap() > g2,
            "reads the recreated marker"
        );
    }

    #[test]
    fn without_a_readable_marker_there_is_no_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing-dir").join("t.db");
        let epoch = AuthEpoch::open(&db, None);
        assert_eq!(epoch.generation(), None);
    }
}
