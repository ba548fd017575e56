//! Schema migrations: refinery, embedded from `migrations/V{n}__{name}.sql` at compile
//! time, forward-only. This module compares the embedded set with the database's
//! history (`refinery_schema_history`) and refuses divergent (edited after applying),
//! missing and unknown-newer migrations with a message that says what to do. Before
//! migrating a non-empty database it keeps a consistent copy (`VACUUM INTO`).

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::DbError;
use crate::fsutil;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The history table refinery maintains.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// A migration compiled into this binary.
#[derive(Debug, Clone, Serialize)]
pub struct Embedded {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

/// A row of the database's migration history.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub applied_on: String,
    pub checksum: String,
}

/// Something that makes migrating unsafe.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Applied, but the embedded file with that version has changed since.
    Divergent {
        version: i64,
        name: String,
        applied_checksum: String,
        embedded_checksum: String,
    },
    /// Applied, but this binary has no migration with that version (and knows newer ones).
    Missing { version: i64, name: String },
    /// Applied, newer than anything this binary knows: the database is from a newer release.
    Newer { version: i64, name: String },
    /// Embedded and not applied, but older than the newest applied one.
    OutOfOrder { version: i64, name: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Divergent {
                version,
                name,
                applied_checksum,
                embedded_checksum,
            } => write!(
                f,
                "migration V{version}__{name} was changed after it was applied (checksum in database {applied_checksum}, in this binary {embedded_checksum}); migrations are forward-only: restore the original file and add a new migration instead"
            ),
            Problem::Missing { version, name } => write!(
                f,
                "migration V{version}__{name} is applied in the database but unknown to this binary; run the release that applied it, or restore a backup taken before it"
            ),
            Problem::Newer { version, name } => write!(
                f,
                "the database schema is at V{version}__{name}, newer than this binary (appliance {}) knows; upgrade appliance, or restore a backup made by this version",
                crate::VERSION
            ),
            Problem::OutOfOrder { version, name } => write!(
                f,
                "migration V{version}__{name} is older than the newest applied one but was never applied; the history is out of order"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("{}", join_problems(.0))]
    Problems(Vec<Problem>),
    #[error(
        "{count} migration(s) pending and database.migrate_on_start is false; run `appliance migrate run` first"
    )]
    PendingRefused { count: usize },
    #[error("cannot copy the database before migrating to {path}")]
    Copy { path: PathBuf, source: DbError },
    #[error("migration failed (the database was left at the last successful migration): {0}")]
    Refinery(#[from] refinery::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The embedded migrations compared with one database.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    pub embedded: Vec<Embedded>,
    pub applied: Vec<Applied>,
}

impl MigrationStatus {
    /// Embedded migrations not yet applied, in version order.
    pub fn pending(&self) -> Vec<&Embedded> {
        self.embedded
            .iter()
            .filter(|e| !self.applied.iter().any(|a| a.version == e.version))
            .collect()
    }

    /// The newest applied version (0 for a fresh database).
    pub fn current_version(&self) -> i64 {
        self.applied.iter().map(|a| a.version).max().unwrap_or(0)
    }

    /// The newest embedded version.
    pub fn target_version(&self) -> i64 {
        self.embedded.iter().map(|e| e.version).max().unwrap_or(0)
    }

    /// True when nothing is pending and nothing is wrong.
    pub fn is_current(&self) -> bool {
        self.pending().is_empty() && self.problems().is_empty()
    }

    pub fn problems(&self) -> Vec<Problem> {
        let newest_embedded = self.target_version();
        let newest_applied = self.current_version();
        let mut problems = Vec::new();
        for a in &self.applied {
            match self.embedded.iter().find(|e| e.version == a.version) {
                Some(e) if e.checksum != a.checksum || e.name != a.name => {
                    problems.push(Problem::Divergent {
                        version: a.version,
                        name: a.name.clone(),
                        applied_checksum: a.checksum.clone(),
                        embedded_checksum: e.checksum.clone(),
                    })
                }
                Some(_) => {}
                None if a.version > newest_embedded => problems.push(Problem::Newer {
                    version: a.version,
                    name: a.name.clone(),
                }),
                None => problems.push(Problem::Missing {
                    version: a.version,
                    name: a.name.clone(),
                }),
            }
        }
        for p in self.pending() {
            if p.version < newest_applied {
                problems.push(Problem::OutOfOrder {
                    version: p.version,
                    name: p.name.clone(),
                });
            }
        }
        problems
    }
}

/// The migrations compiled into this binary, in version order.
pub fn embedded() -> Vec<Embedded> {
    let runner = embedded::migrations::runner();
    let mut list: Vec<Embedded> = runner
        .get_migrations()
        .iter()
        .map(|m| Embedded {
            version: i64::from(m.version()),
            name: m.name().to_string(),
            checksum: m.checksum().to_string(),
        })
        .collect();
    list.sort_by_key(|m| m.version);
    list
}

/// Read the history table (read-only; a database without one has applied nothing).
/// Read by hand rather than through refinery so that a damaged row is reported, not a
/// panic.
#[tracing::instrument(level = "debug", skip_all)]
pub fn applied(conn: &Connection) -> Result<Vec<Applied>, DbError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [HISTORY_TABLE],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT version, name, applied_on, checksum FROM {HISTORY_TABLE} ORDER BY version"
    ))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Applied {
                version: r.get(0)?,
                name: r.get(1)?,
                applied_on: r.get(2)?,
                checksum: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn status(conn: &Connection) -> Result<MigrationStatus, DbError> {
    Ok(MigrationStatus {
        embedded: embedded(),
        applied: applied(conn)?,
    })
}

/// True when the database holds any table (so a copy is worth keeping).
fn has_tables(conn: &Connection) -> Result<bool, DbError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub from_version: i64,
    pub to_version: i64,
    pub applied: Vec<Embedded>,
    /// The pre-migration copy, when the database was not empty.
    pub copy: Option<PathBuf>,
}

/// Apply pending migrations on the writer connection. Refuses on any [`Problem`]. A
/// non-empty database is first copied with `VACUUM INTO` to
/// `backups_dir/pre-migrate-v{from}-to-v{to}-{timestamp}.db` (temp name, fsync, rename).
#[tracing::instrument(level = "debug", skip_all)]
pub fn migrate(conn: &mut Connection, backups_dir: &Path) -> Result<MigrateReport, MigrationError> {
    let st = status(conn)?;
    let problems = st.problems();
    if !problems.is_empty() {
        return Err(MigrationError::Problems(problems));
    }
    let pending: Vec<Embedded> = st.pending().into_iter().cloned().collect();
    let from_version = st.current_version();
    let to_version = st.target_version();
    if pending.is_empty() {
        return Ok(MigrateReport {
            from_version,
            to_version: from_version,
            applied: pending,
            copy: None,
        });
    }
    let copy = if has_tables(conn)? {
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| DbError::Other(e.to_string()))?;
        let path = backups_dir.join(format!(
            "pre-migrate-v{from_version}-to-v{to_version}-{stamp}.db"
        ));
        copy_database(conn, &path).map_err(|source| MigrationError::Copy {
            path: path.clone(),
            source,
        })?;
        tracing::info!(copy = %path.display(), "kept a copy of the database before migrating");
        Some(path)
    } else {
        None
    };
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run(conn)?;
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(MigrateReport {
        from_version,
        to_version,
        applied: pending,
        copy,
    })
}

/// Apply the embedded migrations up to `version` to a fresh database (`doctor` builds
/// its reference schema this way, in memory). No copy, no checks: for scratch databases.
#[tracing::instrument(level = "debug", skip_all)]
pub fn migrate_to(conn: &mut Connection, version: i64) -> Result<(), MigrationError> {
    if version <= 0 {
        return Ok(());
    }
    let target = i32::try_from(version).map_err(|e| DbError::Other(e.to_string()))?;
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(target))
        .run(conn)?;
    Ok(())
}

/// A consistent online copy of the database (`VACUUM INTO`), made durable: written to a
/// temporary name, fsynced, renamed, directory fsynced.
#[tracing::instrument(level = "debug", skip_all)]
pub fn copy_database(conn: &Connection, dest: &Path) -> Result<(), DbError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Other(format!("{}: {e}", dir.display())))?;
    }
    let tmp = fsutil::temp_path_for(dest);
    let _ = std::fs::remove_file(&tmp);
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| DbError::Other(format!("path is not UTF-8: {}", tmp.display())))?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [tmp_str]) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    fsutil::persist(&tmp, dest).map_err(|e| DbError::Other(format!("{}: {e}", dest.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_numbered_from_one_without_gaps() {
        let list = embedded();
        assert!(!list.is_empty());
        for (i, m) in list.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{m:?}");
        }
    }

    #[test]
    fn fresh_database_migrates_without_copy_and_rerun_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("x.db")).unwrap();
        let r = migrate(&mut conn, dir.path()).unwrap();
        assert_eq!(r.from_version, 0);
        assert_eq!(r.applied.len(), embedded().len());
        assert!(r.copy.is_none());
        let again = migrate(&mut conn, dir.path()).unwrap();
        assert!(again.applied.is_empty());
        assert!(status(&conn).unwrap().is_current());
    }

    #[test]
    fn edited_checksum_is_divergent() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("x.db")).unwrap();
        migrate(&mut conn, dir.path()).unwrap();
        conn.execute(
            &format!("UPDATE {HISTORY_TABLE} SET checksum = '1' WHERE version = 1"),
            [],
        )
        .unwrap();
        let problems = status(&conn).unwrap().problems();
        assert!(
            matches!(problems.as_slice(), [Problem::Divergent { version: 1, .. }]),
            "{problems:?}"
        );
        let err = migrate(&mut conn, dir.path()).unwrap_err().to_string();
        assert!(err.contains("changed after it was applied"), "{err}");
    }
}
