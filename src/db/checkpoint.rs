//! WAL checkpoints, off the request path (DESIGN.md, storage rules): on demand on the
//! writer (after a backup), every `database.checkpoint_interval_ms` on a connection of
//! their own (PASSIVE: never blocks the writer), and the final TRUNCATE of a clean stop.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Db, DbError, apply_common_pragmas, blocking};

/// How [`Db::checkpoint`] runs (`PRAGMA wal_checkpoint(MODE)`).
#[derive(Debug, Clone, Copy)]
pub enum Checkpoint {
    /// Copies what it can without waiting for anyone; never blocks writers.
    Passive,
    /// Waits for readers and writers, copies everything and truncates the WAL to 0 bytes.
    Truncate,
}

/// Result of a checkpoint: frames in the WAL and frames copied into the database.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointResult {
    pub busy: bool,
    pub wal_frames: i64,
    pub checkpointed_frames: i64,
}

impl Db {
    /// Checkpoint the WAL on the writer connection.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn checkpoint(&self, mode: Checkpoint) -> Result<CheckpointResult, DbError> {
        self.with_writer(move |conn| run_checkpoint(conn, mode))
            .await
    }

    /// Start the background checkpointer: a connection of its own runs a PASSIVE
    /// checkpoint every `database.checkpoint_interval_ms`, so the WAL stays bounded
    /// without ever blocking the writer. Stops when `stop` turns true.
    pub fn spawn_checkpointer(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.clone();
        tokio::spawn(async move {
            if db.inner.config.checkpoint_interval_ms == 0 {
                tracing::info!(
                    "background WAL checkpoints are off (database.checkpoint_interval_ms = 0): Litestream checkpoints"
                );
                return;
            }
            let interval = Duration::from_millis(db.inner.config.checkpoint_interval_ms);
            let path = db.inner.path.clone();
            let config = db.inner.config.clone();
            let conn = match blocking(move || {
                let c = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                apply_common_pragmas(&c, &config)?;
                Ok::<_, DbError>(c)
            })
            .await
            {
                Ok(c) => Arc::new(std::sync::Mutex::new(c)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the checkpoint connection; WAL checkpoints will only run at shutdown");
                    return;
                }
            };
            loop {
                tokio::select! {
                    () = crate::shutdown::stopped(&mut stop) => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                let conn = conn.clone();
                let res = blocking(move || {
                    let guard = conn
                        .lock()
                        .map_err(|_| DbError::Other("checkpoint connection poisoned".into()))?;
                    run_checkpoint(&guard, Checkpoint::Passive)
                })
                .await;
                match res {
                    Ok(r) => tracing::trace!(
                        wal_frames = r.wal_frames,
                        copied = r.checkpointed_frames,
                        "checkpoint"
                    ),
                    Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
                }
            }
        })
    }

    /// Final step of a clean shutdown: checkpoint everything and truncate the WAL, so
    /// the database file alone is complete.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn close(&self) -> Result<(), DbError> {
        // A reader may hold an old snapshot: Litestream keeps a read transaction open
        // between its own checkpoints. Waiting the whole busy timeout for it would only
        // stall the stop, so each try waits briefly. When the file cannot be completed
        // the WAL keeps the rest (committed and durable); the next start, finding no
        // clean-stop mark, checks the file in the background after it is ready.
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        loop {
            let busy = Duration::from_millis(self.inner.config.busy_timeout_ms);
            let r = self
                .with_writer(move |conn| {
                    conn.busy_timeout(CLOSE_TRY)?;
                    let r = run_checkpoint(conn, Checkpoint::Truncate);
                    conn.busy_timeout(busy)?;
                    r
                })
                .await?;
            let complete = !r.busy || (r.wal_frames >= 0 && r.checkpointed_frames == r.wal_frames);
            if complete {
                // The next open may skip reading the whole file (clean_stop).
                let path = self.inner.path.clone();
                blocking(move || super::clean_stop::mark(&path)).await?;
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    wal_frames = r.wal_frames,
                    copied = r.checkpointed_frames,
                    "final checkpoint could not complete: another reader (Litestream?) holds an older snapshot; the WAL keeps the rest, and the next start checks the file after it is ready"
                );
                return Ok(());
            }
            tokio::time::sleep(CLOSE_TRY).await;
        }
    }
}

/// How long a clean stop keeps trying to checkpoint everything, and each try's wait.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
const CLOSE_TRY: Duration = Duration::from_millis(100);

fn run_checkpoint(conn: &Connection, mode: Checkpoint) -> Result<CheckpointResult, DbError> {
    let sql = match mode {
        Checkpoint::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Checkpoint::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    let r = conn.query_row(sql, [], |r| {
        Ok(CheckpointResult {
            busy: r.get::<_, i64>(0)? != 0,
            wal_frames: r.get(1)?,
            checkpointed_frames: r.get(2)?,
        })
    })?;
    Ok(r)
}
