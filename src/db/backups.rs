//! Queries of the backup bookkeeping tables (`backup_runs`, `backup_verifications`,
//! migration V3). The archives themselves are files; see `crate::backup`. Each function
//! takes a plain connection so the server (through [`super::Db::write`]) and the CLI
//! (with its own connection beside a running server) record runs the same way.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;

/// One attempt to create a backup, as recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub name: String,
    pub trigger: String,
    pub started_at: String,
    pub duration_ms: i64,
    pub size_bytes: Option<i64>,
    pub source_bytes: Option<i64>,
    pub ok: bool,
    pub error: Option<String>,
}

/// The latest verification of one archive.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    pub verified_at: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// How a verification that could not run (no room for its deep checks) is recorded: not
/// ok, and its error starts with this, so it is never mistaken for a bad archive.
pub const NOT_CHECKED: &str = "not checked: ";

impl Verification {
    pub fn passed(at: String) -> Verification {
        Verification {
            verified_at: at,
            ok: true,
            error: None,
        }
    }
    pub fn failed(at: String, problem: &str) -> Verification {
        Verification {
            verified_at: at,
            ok: false,
            error: Some(problem.to_string()),
        }
    }
    pub fn not_checked(at: String, why: &str) -> Verification {
        Verification {
            verified_at: at,
            ok: false,
            error: Some(format!("{NOT_CHECKED}{why}")),
        }
    }
    /// The archive was checked and found faulty (not merely left unchecked).
    pub fn found_faulty(&self) -> bool {
        !self.ok
            && !self
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(NOT_CHECKED))
    }
}

/// Whether this database has the bookkeeping tables yet (a CLI backup of a database
/// that was never migrated to V3 has nowhere to record its run).
#[tracing::instrument(level = "debug", skip_all)]
pub fn has_tables(conn: &Connection) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'backup_runs'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn record_run(conn: &Connection, run: &Run) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO backup_runs (name, trigger, started_at, duration_ms, size_bytes, source_bytes, ok, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run.name,
            run.trigger,
            run.started_at,
            run.duration_ms,
            run.size_bytes,
            run.source_bytes,
            run.ok,
            run.error
        ],
    )?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn record_verification(
    conn: &Connection,
    name: &str,
    result: &Verification,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO backup_verifications (name, verified_at, ok, error) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET verified_at = excluded.verified_at,
                                          ok = excluded.ok, error = excluded.error",
        params![name, result.verified_at, result.ok, result.error],
    )?;
    Ok(())
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        name: r.get(0)?,
        trigger: r.get(1)?,
        started_at: r.get(2)?,
        duration_ms: r.get(3)?,
        size_bytes: r.get(4)?,
        source_bytes: r.get(5)?,
        ok: r.get(6)?,
        error: r.get(7)?,
    })
}

const RUN_COLUMNS: &str =
    "name, trigger, started_at, duration_ms, size_bytes, source_bytes, ok, error";

/// The most recent attempt, successful or not.
#[tracing::instrument(level = "debug", skip_all)]
pub fn last_run(conn: &Connection) -> Result<Option<Run>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM backup_runs ORDER BY id DESC LIMIT 1"),
            [],
            run_from_row,
        )
        .optional()?)
}

/// The most recent successful attempt.
#[tracing::instrument(level = "debug", skip_all)]
pub fn last_success(conn: &Connection) -> Result<Option<Run>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM backup_runs WHERE ok = 1 ORDER BY id DESC LIMIT 1"),
            [],
            run_from_row,
        )
        .optional()?)
}

/// Every recorded attempt by archive name (the newest attempt per name).
#[tracing::instrument(level = "debug", skip_all)]
pub fn runs_by_name(conn: &Connection) -> Result<HashMap<String, Run>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM backup_runs ORDER BY id"
    ))?;
    let rows = stmt.query_map([], run_from_row)?;
    let mut out = HashMap::new();
    for r in rows {
        let r = r?;
        out.insert(r.name.clone(), r);
    }
    Ok(out)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn verifications(conn: &Connection) -> Result<HashMap<String, Verification>, DbError> {
    let mut stmt = conn.prepare("SELECT name, verified_at, ok, error FROM backup_verifications")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Verification {
                verified_at: r.get(1)?,
                ok: r.get(2)?,
                error: r.get(3)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
