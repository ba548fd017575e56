//! Where short bookkeeping writes go (audit entries, backup runs and verifications):
//! through the server's writer ([`Db`]), or, for a CLI command, over a connection of its
//! own that waits for the server's writer like any other SQLite writer. A CLI ledger
//! never creates a database and skips tables an old database does not have yet (a
//! database restored from before V3/V4 gets them at the next start); each method says
//! whether it found them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::audit::{self, Event};
use super::backups::{self, Run, Verification};
use super::{Checkpoint, Db, DbError};

#[derive(Clone)]
pub enum Ledger {
    /// The running server's database handle.
    Server(Db),
    /// A command's own short connection to the database file at `path`.
    Direct {
        path: PathBuf,
        busy_timeout: Duration,
    },
}

impl Ledger {
    pub fn direct(path: PathBuf, busy_timeout_ms: u64) -> Ledger {
        Ledger::Direct {
            path,
            busy_timeout: Duration::from_millis(busy_timeout_ms),
        }
    }

    /// Run `f` where the bookkeeping goes; None when a direct ledger finds no database
    /// or `has` says its tables are missing.
    async fn run<T, F>(
        &self,
        has: fn(&Connection) -> Result<bool, DbError>,
        f: F,
    ) -> Result<Option<T>, DbError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, DbError> + Send + Sync + 'static,
    {
        match self {
            Ledger::Server(db) => db.write(move |c| f(c).map(Some)).await,
            Ledger::Direct { path, busy_timeout } => {
                let (path, busy_timeout) = (path.clone(), *busy_timeout);
                tokio::task::spawn_blocking(move || {
                    if !path.is_file() {
                        return Ok(None);
                    }
                    let conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(busy_timeout)?;
                    if !has(&conn)? {
                        return Ok(None);
                    }
                    f(&conn).map(Some)
                })
                .await
                .map_err(|e| DbError::Other(e.to_string()))?
            }
        }
    }

    /// Append an audit entry; false when there is no audit table to append to.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit(&self, event: Event) -> Result<bool, DbError> {
        let done = self
            .run(audit::has_table, move |c| audit::record(c, &event))
            .await?;
        Ok(done.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn last_backup_success(&self) -> Result<Option<Run>, DbError> {
        Ok(self
            .run(backups::has_tables, backups::last_success)
            .await?
            .flatten())
    }

    /// Record a backup attempt; false when the database has no bookkeeping yet.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn record_backup_run(&self, run: Run) -> Result<bool, DbError> {
        let done = self
            .run(backups::has_tables, move |c| backups::record_run(c, &run))
            .await?;
        Ok(done.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn record_verification(
        &self,
        name: String,
        v: Verification,
    ) -> Result<bool, DbError> {
        let done = self
            .run(backups::has_tables, move |c| {
                backups::record_verification(c, &name, &v)
            })
            .await?;
        Ok(done.is_some())
    }

    /// The last verification of each archive (empty without bookkeeping).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verifications(&self) -> Result<HashMap<String, Verification>, DbError> {
        Ok(self
            .run(backups::has_tables, backups::verifications)
            .await?
            .unwrap_or_default())
    }

    /// After a backup held a read snapshot, the server catches up on the WAL now, off the
    /// request path; a command leaves that to the server's own checkpointer.
    pub async fn checkpoint_after_backup(&self) {
        if let Ledger::Server(db) = self
            && let Err(e) = db.checkpoint(Checkpoint::Passive).await
        {
            tracing::warn!(error = %e, "checkpoint after backup failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::audit::{Filter, Outcome};

    fn event() -> Event {
        Event::new("cli:test", "backup.prune", Outcome::Success)
    }

    fn verification() -> Verification {
        Verification {
            verified_at: crate::clock::now(),
            ok: true,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_command_ledger_never_creates_a_database_and_skips_missing_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.db");
        let ledger = Ledger::direct(path.clone(), 1000);
        assert!(!ledger.audit(event()).await.unwrap());
        assert!(
            !ledger
                .record_verification("a".into(), verification())
                .await
                .unwrap()
        );
        assert!(ledger.verifications().await.unwrap().is_empty());
        assert!(
            !path.exists(),
            "a command's ledger created {}",
            path.display()
        );

        // A database from before the bookkeeping tables: nothing is written, nothing fails.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        assert!(!ledger.audit(event()).await.unwrap());
        assert!(ledger.last_backup_success().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_command_ledger_writes_beside_the_servers_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.db");
        let db = Db::open(&path, &crate::config::DatabaseConfig::default())
            .await
            .unwrap();
        let backups = dir.path().join("backups");
        db.with_writer(move |c| super::super::migrations::migrate(c, &backups).map(|_| ()))
            .await
            .unwrap();
        let direct = Ledger::direct(path.clone(), 1000);
        let server = Ledger::Server(db.clone());
        assert!(direct.audit(event()).await.unwrap());
        assert!(server.audit(event()).await.unwrap());
        assert!(
            direct
                .record_verification("x.tar.zst".into(), verification())
                .await
                .unwrap()
        );
        assert!(server.verifications().await.unwrap()["x.tar.zst"].ok);
        let entries = db
            .read(|c| {
                audit::list(
                    c,
                    &Filter {
                        action: Some("backup.prune".into()),
                        limit: 10,
                        ..Filter::default()
                    },
                )
            })
            .await
            .unwrap();
        assert_eq!(entries.len(), 2, "one entry from each ledger");
        db.close().await.unwrap();
    }
}
