//! A backup's view of the database: one read transaction on a read-only connection,
//! and the file's bytes as that transaction sees them, page by page through
//! `sqlite_dbpage` (DESIGN.md, Backups). WAL readers never block writers, and the copy
//! is never restarted by them.

use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::DbError;

/// A read-only connection for one snapshot.
pub struct Snapshot {
    conn: Connection,
}

impl Snapshot {
    pub fn open(path: &Path) -> Result<Snapshot, DbError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Pages through a memory map instead of one pread system call per page (107k of
        // them for 410 MiB). A read-only connection never writes through the map.
        conn.pragma_update(None, "mmap_size", i64::MAX)?;
        Ok(Snapshot { conn })
    }

    /// Start the read transaction; the snapshot is fixed by its first read, here.
    /// Returns (page size, page count).
    pub fn begin(&self) -> Result<(u64, u64), DbError> {
        self.conn.execute_batch("BEGIN")?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let page_count: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        Ok((page_size.unsigned_abs(), page_count.unsigned_abs()))
    }

    /// The connection, for reads inside the snapshot.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The database file's bytes as the snapshot sees them.
    pub fn pages(&self, page_count: u64, page_size: u64) -> Result<DbPages<'_>, DbError> {
        DbPages::new(&self.conn, page_count, page_size)
    }

    /// End the read transaction: checkpoints may pass the snapshot again.
    pub fn end(&self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

/// The database file's bytes as the read transaction sees them, page by page from
/// `sqlite_dbpage` (the pending-byte page comes back as zeros, as on disk).
pub struct DbPages<'c> {
    stmt: rusqlite::Statement<'c>,
    next: i64,
    last: i64,
    page: Vec<u8>,
    pos: usize,
}

impl<'c> DbPages<'c> {
    fn new(conn: &'c Connection, page_count: u64, page_size: u64) -> Result<Self, DbError> {
        Ok(DbPages {
            stmt: conn.prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")?,
            next: 1,
            last: i64::try_from(page_count).unwrap_or(i64::MAX),
            page: Vec::with_capacity(usize::try_from(page_size).unwrap_or(4096)),
            pos: 0,
        })
    }
}

impl Read for DbPages<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.page.len() {
            if self.next > self.last {
                return Ok(0);
            }
            let DbPages { stmt, page, .. } = self;
            page.clear();
            stmt.query_row([self.next], |r| {
                page.extend_from_slice(r.get_ref(0)?.as_blob()?);
                Ok(())
            })
            .map_err(|e| io::Error::other(format!("reading database page {}: {e}", self.next)))?;
            self.next += 1;
            self.pos = 0;
        }
        let n = buf.len().min(self.page.len() - self.pos);
        buf[..n].copy_from_slice(&self.page[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_dbpage_is_compiled_in() {
        // Backups read pages through it; .cargo/config.toml asks for it.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_dbpage", [], |r| r.get(0))
            .expect("SQLite built without SQLITE_ENABLE_DBPAGE_VTAB");
        assert!(n >= 0);
    }
}
