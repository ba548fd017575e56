//! SQLite access. One writer connection owned by a dedicated thread ([`writer`], with
//! group commit), a small pool of `query_only` reader connections, and a background WAL
//! checkpointer. SQLite work never runs on the async executor: writes on the writer
//! thread, reads and checks on tokio's blocking threads.
//!
//! Writes go through [`Db::write`], which runs a closure inside `BEGIN IMMEDIATE …
//! COMMIT`, committed with whatever else is queued (a closure may run twice when
//! another write of its group fails, see [`writer`]); errors come back typed
//! ([`DbError`]). Table-group modules (articles, users…)
//! add their queries in files beside this one; migrations live in [`migrations`].

pub mod articles;
pub mod audit;
pub mod auth_epoch;
pub mod backups;
mod checkpoint;
pub mod clean_stop;
pub mod cleanup;
pub mod error;
pub mod errors;
pub mod inspect;
pub mod jobs;
pub mod ledger;
pub mod migrations;
pub mod outbox;
pub mod pg;
pub mod snapshot;
pub mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::config::{DatabaseConfig, Synchronous};
pub use checkpoint::{Checkpoint, CheckpointResult};
pub use error::DbError;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// (device, inode) of the file when it was opened, to notice replacement/deletion.
    identity: (u64, u64),
    jobs: std::sync::mpsc::Sender<writer::Job>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    write_timeout: Duration,
    config: DatabaseConfig,
    /// Announces and notices changes of users and API tokens across processes.
    auth: Arc<auth_epoch::AuthEpoch>,
    /// The whole-file check: done at open (`Some(Ok)`), found a problem after a start
    /// that deferred it (`Some(Err)`), or deferred and not finished yet (`None`).
    integrity: Arc<std::sync::Mutex<Option<Result<(), String>>>>,
}

impl Db {
    /// Open (creating if missing) the database: WAL mode, pragmas, `quick_check`, the
    /// writer and the reader pool. A corrupt file is [`DbError::Corrupt`].
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn open(path: &Path, config: &DatabaseConfig) -> Result<Db, DbError> {
        let path = path.to_path_buf();
        let config = config.clone();
        blocking(move || Db::open_blocking(&path, &config)).await
    }

    fn open_blocking(path: &Path, config: &DatabaseConfig) -> Result<Db, DbError> {
        let writer = Connection::open(path)?;
        restrict_permissions(path)?;
        // WAL is set once, here, before any pool connection exists: doing it in r2d2's
        // init hook races between connections and logs "database is locked".
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Other(format!(
                "cannot put {} in WAL mode (journal mode stays {mode}); is the data directory on a network file system?",
                path.display()
            )));
        }
        // The whole file is read at open only when the last stop was not clean; after a
        // clean one the check runs once the server is up (see clean_stop).
        let integrity = if clean_stop::take(path) {
            tracing::debug!("clean stop recorded; quick_check deferred until after start");
            None
        } else {
            quick_check(&writer)?;
            Some(Ok(()))
        };
        apply_common_pragmas(&writer, config)?;
        let sync = match config.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        writer.pragma_update(None, "synchronous", sync)?;
        // Checkpoints run from a background task (Db::spawn_checkpointer), not inside
        // an unlucky writer's commit (DESIGN.md: a ~1 s commit was measured).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A negative cache_size is in KiB. SQLite's default (2 MiB) missed on the index
        // pages that every insert descends (slug, external id, listings) once there were
        // tens of thousands of articles; much more costs single writes, because a
        // COMMIT after an index page split walks every cached page (README, Performance).
        writer.pragma_update(
            None,
            "cache_size",
            -clamp_i64(config.writer_cache_bytes / 1024).max(1),
        )?;

        let reader_config = config.clone();
        let manager = SqliteConnectionManager::file(path)
            .with_flags(
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(move |c| {
                apply_common_pragmas(c, &reader_config)?;
                c.pragma_update(None, "query_only", true)?;
                // mmap lifts the shared page-cache lock ceiling of the bundled SQLite.
                c.pragma_update(None, "mmap_size", clamp_i64(reader_config.mmap_size_bytes))?;
                Ok(())
            });
        let readers = r2d2::Pool::builder()
            .max_size(config.readers)
            .connection_timeout(Duration::from_millis(config.busy_timeout_ms))
            .build(manager)
            .map_err(|e| DbError::Other(format!("cannot open reader connections: {e}")))?;
        let auth = Arc::new(auth_epoch::AuthEpoch::open(
            path,
            auth_epoch::read(&writer).ok(),
        ));
        let writer_auth = auth.clone();
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(writer, queue, &writer_auth))
            .map_err(|e| DbError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(Db {
            inner: Arc::new(Inner {
                identity: file_identity(path)?,
                path: path.to_path_buf(),
                jobs,
                readers,
                write_timeout: Duration::from_millis(config.write_timeout_ms),
                config: config.clone(),
                auth,
                integrity: Arc::new(std::sync::Mutex::new(integrity)),
            }),
        })
    }

    /// Run the whole-file check deferred at open (after a clean stop), on its own thread
    /// and read-only connection, once the server is up; its finding shows in
    /// [`Db::integrity`] (and `/readyz`). Nothing to do when open checked already.
    pub fn spawn_deferred_check(&self) {
        let slot = self.inner.integrity.clone();
        if slot.lock().map(|s| s.is_some()).unwrap_or(true) {
            return;
        }
        let path = self.inner.path.clone();
        let spawned = std::thread::Builder::new()
            .name("sqlite-check".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let found = open_read_only(&path)
                    .and_then(|c| quick_check(&c))
                    .map_err(|e| e.to_string());
                match &found {
                    Ok(()) => tracing::info!(ms = started.elapsed().as_millis() as u64, "database checked (quick_check) after start"),
                    Err(e) => tracing::error!(error = %e, "the database check after start found a problem; stop the server, run appliance doctor, restore the latest backup"),
                }
                if let Ok(mut s) = slot.lock() {
                    *s = Some(found);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the database check thread");
        }
    }

    /// The whole-file check's finding: `Some(Ok)` checked, `Some(Err)` a problem,
    /// `None` still running (deferred after a clean stop).
    pub fn integrity(&self) -> Option<Result<(), String>> {
        self.inner
            .integrity
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reader connections: (open, in use).
    pub fn reader_pool_state(&self) -> (u32, u32) {
        let st = self.inner.readers.state();
        (st.connections, st.connections - st.idle_connections)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` inside `BEGIN IMMEDIATE … COMMIT` on the writer, grouped with other
    /// queued writes. If `f` fails, its changes roll back and nothing of it is written;
    /// the result comes back only after the COMMIT. A write that could not start within
    /// `database.write_timeout_ms` is [`DbError::Busy`] and is guaranteed never to run.
    ///
    /// `f` may run more than once: when another write of its group fails, the group is
    /// rolled back and `f` runs again in a fresh transaction (see `writer`). Only the
    /// last run's result is returned, and only its changes are committed, so `f` must do
    /// nothing outside the transaction that must not happen twice.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
    {
        let claim = writer::Claim::default();
        let (reply, rx) = oneshot::channel();
        let job = writer::TxJobOf {
            claim: claim.clone(),
            work: f,
            out: None,
            reply: Some(reply),
            queued: Some(std::time::Instant::now()),
        };
        self.submit(writer::Job::Tx(Box::new(job)))?;
        self.await_reply(claim, rx, self.inner.write_timeout).await
    }

    /// Run `f` on the writer connection alone, outside any transaction (migrations,
    /// `VACUUM INTO`, checkpoints). Prefer [`Db::write`] for data changes.
    pub async fn with_writer<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        self.exclusive(self.inner.write_timeout, f).await
    }

    async fn exclusive<T, E, F>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let claim = writer::Claim::default();
        let (reply, rx) = oneshot::channel();
        let work = Box::new(move |conn: &mut Connection| {
            let _ = reply.send(f(conn));
        });
        self.submit(writer::Job::Exclusive(claim.clone(), work))?;
        self.await_reply(claim, rx, timeout).await
    }

    fn submit(&self, job: writer::Job) -> Result<(), DbError> {
        self.inner
            .jobs
            .send(job)
            .map_err(|_| DbError::Other("the database writer has stopped".into()))
    }

    /// Wait for a job's result. After `timeout` the job is cancelled unless the writer
    /// already started it, in which case its result is awaited (it will be committed).
    async fn await_reply<T, E>(
        &self,
        claim: writer::Claim,
        mut rx: oneshot::Receiver<Result<T, E>>,
        timeout: Duration,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let stopped = || DbError::Other("the database writer stopped before answering".into());
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(r) => r.map_err(|_| stopped())?,
            Err(_) if claim.cancel() => Err(DbError::Busy {
                message: format!("the writer was not free within {} ms", timeout.as_millis()),
            }
            .into()),
            Err(_) => rx.await.map_err(|_| stopped())?,
        }
    }

    /// Run `f` on a pooled read-only connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.inner.readers.clone();
        blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
    }

    /// Prove that a write could start now: the writer takes a job within `timeout`,
    /// opens `BEGIN IMMEDIATE` (SQLite's write lock) and rolls back. Writes nothing.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn probe_writer(&self, timeout: Duration) -> Result<(), DbError> {
        self.exclusive(timeout, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.rollback()?;
            Ok(())
        })
        .await
    }

    /// Prove that the file on disk is still this database and readable from scratch:
    /// the path still names the file the server opened (not deleted or replaced), and a
    /// fresh read-only connection can read its header and schema. Pooled connections
    /// alone can keep answering from cached pages after the file was destroyed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn check_file(&self) -> Result<(), DbError> {
        let path = self.inner.path.clone();
        let identity = self.inner.identity;
        blocking(move || {
            if !path.exists() {
                return Err(DbError::Other(format!(
                    "{} was deleted under the running server; stop it and restore the latest backup",
                    path.display()
                )));
            }
            if file_identity(&path)? != identity {
                return Err(DbError::Other(format!(
                    "{} was replaced or deleted under the running server; restart it (and restore a backup if data is missing)",
                    path.display()
                )));
            }
            let conn = open_read_only(&path)?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }

    /// The current generation of users and API tokens (see [`auth_epoch`]): what was
    /// verified in another generation must be looked up again. `None`: trust nothing.
    pub fn auth_generation(&self) -> Option<u64> {
        self.inner.auth.generation()
    }

    /// Start the once-a-second check for changes of users and API tokens that no
    /// writer announced (see [`auth_epoch::AuthEpoch::recheck`]). Stops when `stop`
    /// turns true.
    pub fn spawn_auth_recheck(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = crate::shutdown::stopped(&mut stop) => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                // One blocking hop: read the counter, then announce and check the
                // marker's file with it.
                let auth = db.inner.auth.clone();
                let _ = db
                    .read(move |c| {
                        auth.recheck(auth_epoch::read(c).ok());
                        Ok(())
                    })
                    .await;
            }
        })
    }
}

pub(crate) fn apply_common_pragmas(
    conn: &Connection,
    config: &DatabaseConfig,
) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_millis(config.busy_timeout_ms))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "trusted_schema", false)?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        clamp_i64(config.journal_size_limit_bytes),
    )?;
    Ok(())
}

/// A comma-separated column list with each column qualified by a table alias, for
/// joins: `prefixed("a", "id, title")` is `a.id, a.title`.
pub(crate) fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQLite integers are signed; a configured size beyond i64 means "as large as possible".
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `PRAGMA quick_check`: O(size) but without index cross-checks; a few seconds per GiB.
#[tracing::instrument(level = "debug", skip_all)]
pub fn quick_check(conn: &Connection) -> Result<(), DbError> {
    let problems = damage(conn, false, 5)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DbError::Corrupt {
            message: format!("quick_check: {}", problems.join("; ")),
        })
    }
}

/// What `PRAGMA integrity_check` (`full`) or `quick_check` finds, at most `max` lines;
/// empty when the database is sound.
#[tracing::instrument(level = "debug", skip_all)]
pub fn damage(conn: &Connection, full: bool, max: u32) -> Result<Vec<String>, DbError> {
    let pragma = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({max})"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(if rows == ["ok"] { Vec::new() } else { rows })
}

/// Open an existing database read-only for inspection (`migrate status`, `validate`),
/// without creating it, changing its journal mode or taking the data-dir lock.
#[tracing::instrument(level = "debug", skip_all)]
pub fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Touch the header now so a non-database file fails here with a clear error.
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

/// The database holds user data: no access for "others". SQLite gives the -wal and -shm
/// files the database file's mode, so fixing it here covers all three.
fn restrict_permissions(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| DbError::Other(format!("{}: {e}", path.display()));
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o007 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o770))
            .map_err(io)?;
    }
    Ok(())
}

fn file_identity(path: &Path) -> Result<(u64, u64), DbError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path)
        .map_err(|e| DbError::Other(format!("cannot stat {}: {e}", path.display())))?;
    Ok((md.dev(), md.ino()))
}

/// Run blocking SQLite work on tokio's blocking pool.
pub(crate) async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DbError::Other(format!("database task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Occupy the writer thread until the returned sender is used; returns once the
    /// writer is really taken (polled with a deadline).
    async fn hold_writer(
        db: &Db,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), DbError>>,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let holder = {
            let db = db.clone();
            tokio::spawn(async move {
                db.with_writer(move |_c| {
                    let _ = wait.recv();
                    Ok::<_, DbError>(())
                })
                .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while db.probe_writer(Duration::from_millis(1)).await.is_ok() {
            assert!(Instant::now() < deadline, "holder never took the writer");
            tokio::task::yield_now().await;
        }
        (release, holder)
    }

    async fn open_temp() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), &DatabaseConfig::default())
            .await
            .unwrap();
        (dir, db)
    }

    /// A temporary database with `schema` applied through the writer.
    async fn open_temp_with(schema: &'static str) -> (tempfile::TempDir, Db) {
        let (dir, db) = open_temp().await;
        db.write(move |c| Ok::<_, DbError>(c.execute_batch(schema)?))
            .await
            .unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn write_commits_and_failed_closure_rolls_back() {
        let (_dir, db) =
            open_temp_with("CREATE TABLE t(x TEXT UNIQUE); INSERT INTO t VALUES ('a');").await;
        let err = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES ('b')", [])?;
                tx.execute("INSERT INTO t VALUES ('a')", [])?;
                Ok::<_, DbError>(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Unique { target } if target == "t.x"),
            "{err:?}"
        );
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1, "the failed write left nothing behind");
    }

    #[tokio::test]
    async fn database_file_is_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _db) = open_temp().await;
        let mode = std::fs::metadata(dir.path().join("t.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "mode {mode:o}");
    }

    #[tokio::test]
    async fn readers_are_query_only() {
        let (_dir, db) = open_temp().await;
        let err = db
            .read(|c| Ok(c.execute_batch("CREATE TABLE nope(x)")?))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DbError::ReadOnly { .. } | DbError::Sqlite(_)),
            "{err:?}"
        );
    }

    #[test]
    fn prefixed_qualifies_every_column() {
        assert_eq!(prefixed("a", "id, title,\n body"), "a.id, a.title, a.body");
    }

    #[tokio::test]
    async fn wal_mode_and_pragmas_are_set() {
        let (_dir, db) = open_temp().await;
        let (mode, fk, ts) = db
            .read(|c| {
                let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
                let ts: i64 = c.query_row("PRAGMA trusted_schema", [], |r| r.get(0))?;
                Ok((mode, fk, ts))
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        assert_eq!(ts, 0);
        // The writer's page cache is the configured size (negative: KiB).
        let cache: i64 = db
            .write(|tx| Ok::<_, DbError>(tx.query_row("PRAGMA cache_size", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(
            cache,
            -i64::try_from(DatabaseConfig::default().writer_cache_bytes / 1024).unwrap()
        );
    }

    #[tokio::test]
    async fn a_held_writer_times_out_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DatabaseConfig {
            write_timeout_ms: 50,
            ..DatabaseConfig::default()
        };
        let db = Db::open(&dir.path().join("t.db"), &cfg).await.unwrap();
        let (tx, holder) = hold_writer(&db).await;
        let err = db.write(|_tx| Ok::<_, DbError>(())).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        db.write(|_tx| Ok::<_, DbError>(()))
            .await
            .expect("writer free again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_in_groups_and_a_failure_stays_alone() {
        let (_dir, db) = open_temp_with("CREATE TABLE g(x INTEGER UNIQUE)").await;
        // Hold the writer so the 200 writes below queue up and commit together.
        let (release, holder) = hold_writer(&db).await;
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let db = db.clone();
            // Number 100 is written twice: exactly one of the two must fail.
            let x = if i == 150 { 100 } else { i };
            tasks.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO g(x) VALUES (?1)", [x])?;
                    Ok::<_, DbError>(())
                })
                .await
            }));
        }
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let mut failed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => {}
                Err(DbError::Unique { .. }) => failed += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(failed, 1);
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM g", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 199, "every other write committed");
    }

    #[tokio::test]
    async fn a_failed_write_rolls_its_group_back_and_the_others_run_again_once() {
        use std::future::Future;
        use std::pin::Pin;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, db) =
            open_temp_with("CREATE TABLE g(id INTEGER PRIMARY KEY, x INTEGER UNIQUE)").await;
        let (release, holder) = hold_writer(&db).await;
        // 30 writes queued behind the held writer, so they form one group. Write 10
        // inserts a row and then fails (a duplicate of write 3): nothing of it may stay.
        // Write 20 fails too, in the second try of the group.
        let runs: Vec<Arc<AtomicUsize>> = (0..30).map(|_| Arc::default()).collect();
        type Write = Pin<Box<dyn Future<Output = Result<i64, DbError>> + Send>>;
        let mut writes: Vec<Write> = (0..30i64)
            .map(|i| {
                let (db, runs) = (db.clone(), runs[i as usize].clone());
                Box::pin(async move {
                    db.write(move |c| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        match i {
                            10 => {
                                c.execute("INSERT INTO g(x) VALUES (1000)", [])?;
                                c.execute("INSERT INTO g(x) VALUES (3)", [])?;
                            }
                            20 => {
                                c.execute("INSERT INTO g(x) VALUES (4)", [])?;
                            }
                            _ => {
                                c.execute("INSERT INTO g(x) VALUES (?1)", [i])?;
                            }
                        }
                        Ok::<_, DbError>(c.last_insert_rowid())
                    })
                    .await
                }) as Write
            })
            .collect();
        // One poll each queues every write before the writer is free.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for w in &mut writes {
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let mut ids = Vec::new();
        for (i, w) in writes.into_iter().enumerate() {
            match (i, w.await) {
                (10 | 20, Err(DbError::Unique { .. })) => {}
                (10 | 20, other) => panic!("write {i}: {other:?}"),
                (_, Ok(id)) => ids.push((i as i64, id)),
                (_, Err(e)) => panic!("write {i}: {e:?}"),
            }
        }
        let rows: Vec<(i64, i64)> = db
            .read(|c| {
                let mut st = c.prepare("SELECT x, id FROM g ORDER BY x")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap();
        // Every other write is there, each with the id its caller was given (the id of
        // the run that was committed), and nothing of the failed ones.
        assert_eq!(rows, ids);
        let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        // Before the first failure: run, rolled back, run again. The failed ones once.
        // After it: once, each under its own savepoint, whatever fails there.
        let expected: Vec<usize> = (0..30).map(|i| if i < 10 { 2 } else { 1 }).collect();
        assert_eq!(counts, expected);
    }

    #[tokio::test]
    async fn a_write_answered_busy_never_runs_later() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DatabaseConfig {
            write_timeout_ms: 30,
            ..DatabaseConfig::default()
        };
        let db = Db::open(&dir.path().join("t.db"), &cfg).await.unwrap();
        db.write(|c| {
            c.execute_batch("CREATE TABLE late(x)")?;
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        let (release, holder) = hold_writer(&db).await;
        let err = db
            .write(|c| {
                c.execute_batch("INSERT INTO late VALUES (1)")?;
                Ok::<_, DbError>(())
            })
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        // A write queued after the cancelled one runs; the cancelled one never did.
        db.write(|_c| Ok::<_, DbError>(())).await.unwrap();
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM late", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn garbage_file_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let err = Db::open(&path, &DatabaseConfig::default())
            .await
            .err()
            .expect("garbage must not open");
        assert!(matches!(err, DbError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("restore"), "{err}");
    }
}
