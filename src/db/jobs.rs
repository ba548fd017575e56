//! Queries of the `jobs` table (migration V7): one row per background job (see
//! `crate::ops::jobs`), written when it starts and when it ends.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::DbError;

/// One job as recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub state: String,
    pub actor: String,
    pub target: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, kind, state, actor, target, started_at, finished_at, result, error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let result: Option<String> = r.get(7)?;
    Ok(JobRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: r.get(2)?,
        actor: r.get(3)?,
        target: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(8)?,
    })
}

/// Record a job that starts now; its id.
#[tracing::instrument(level = "debug", skip_all)]
pub fn start(
    conn: &Connection,
    kind: &str,
    actor: &str,
    target: Option<&str>,
    at: &str,
) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO jobs (kind, state, actor, target, started_at) VALUES (?1, 'running', ?2, ?3, ?4)",
        params![kind, actor, target, at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Record how job `id` ended: `succeeded` with `result`, or `failed` with `error`.
#[tracing::instrument(level = "debug", skip_all)]
pub fn finish(
    conn: &Connection,
    id: i64,
    at: &str,
    outcome: &Result<Value, String>,
) -> Result<(), DbError> {
    let (state, result, error) = match outcome {
        Ok(v) => ("succeeded", Some(v.to_string()), None),
        Err(e) => ("failed", None, Some(e.as_str())),
    };
    conn.execute(
        "UPDATE jobs SET state = ?2, finished_at = ?3, result = ?4, error = ?5 WHERE id = ?1",
        params![id, state, at, result, error],
    )?;
    Ok(())
}

/// Mark every job still `running` as `interrupted` (at a server's start, when none of
/// them can be running any more); how many.
#[tracing::instrument(level = "debug", skip_all)]
pub fn interrupt_running(conn: &Connection, at: &str) -> Result<usize, DbError> {
    Ok(conn.execute(
        "UPDATE jobs SET state = 'interrupted', finished_at = ?1,
         error = 'the server stopped before the job finished' WHERE state = 'running'",
        params![at],
    )?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn get(conn: &Connection, id: i64) -> Result<Option<JobRow>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id], row)
        .optional()?)
}

/// The newest jobs (of `kind`, when given), newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub fn recent(conn: &Connection, kind: Option<&str>, limit: u32) -> Result<Vec<JobRow>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE ?1 IS NULL OR kind = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![kind, limit], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
