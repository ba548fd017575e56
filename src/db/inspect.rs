//! Looking at a database rather than at its data: row counts per table, the schema
//! version, the schema itself (for drift checks), foreign-key violations, and opening
//! an archived copy without changing it. Used by backups, verification and `doctor`.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::DbError;

/// Rows per user table, read in the caller's transaction.
#[tracing::instrument(level = "debug", skip_all)]
pub fn row_counts(conn: &Connection) -> Result<BTreeMap<String, i64>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for name in names {
        let quoted = name.replace('"', "\"\"");
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| {
            r.get(0)
        })?;
        out.insert(name, n);
    }
    Ok(out)
}

/// Highest applied migration (0 for a database refinery never touched).
#[tracing::instrument(level = "debug", skip_all)]
pub fn schema_version(conn: &Connection) -> Result<i64, DbError> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'refinery_schema_history'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )?)
}

/// Every row of a statement, its columns as text joined by spaces.
fn rows(conn: &Connection, sql: &str) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare(sql)?;
    let out = stmt
        .query_map([], |r| {
            let n = r.as_ref().column_count();
            let cols: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i) {
                    Ok(v) => match v {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(x) => x.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(_) => "<blob>".into(),
                    },
                    Err(_) => "?".into(),
                })
                .collect();
            Ok(cols.join(" "))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

/// `PRAGMA foreign_key_check`: one line per row that points at a missing row
/// (`table rowid parent fk`).
#[tracing::instrument(level = "debug", skip_all)]
pub fn foreign_key_violations(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    rows(conn, "PRAGMA foreign_key_check")
}

/// Every table, index, trigger and view (SQL text normalised) and every table's columns;
/// not refinery's history, nor the `_litestream_lock` / `_litestream_seq` tables that
/// Litestream adds to a database it replicates.
#[tracing::instrument(level = "debug", skip_all)]
pub fn schema_of(conn: &Connection) -> Result<BTreeMap<String, String>, rusqlite::Error> {
    let mut out = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite_%' AND name != 'refinery_schema_history'
           AND substr(name, 1, 12) != '_litestream_' ORDER BY name",
    )?;
    let items: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, sql) in items {
        let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if kind == "table" {
            let cols = rows(
                conn,
                &format!(
                    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{}')",
                    name.replace('\'', "''")
                ),
            )?;
            out.insert(format!("table {name} columns"), cols.join(", "));
        }
        out.insert(format!("{kind} {name}"), sql);
    }
    Ok(out)
}

/// Whether the schema has an object (table, index, …) named `name`, e.g. the
/// `_litestream_lock` table Litestream adds.
pub fn has_object(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// The application's instance id (a real row of a real table, for the deep health check).
#[tracing::instrument(level = "debug", skip_all)]
pub fn instance_id(conn: &Connection) -> Result<String, DbError> {
    Ok(conn.query_row(
        "SELECT value FROM app_meta WHERE key = 'instance_id'",
        [],
        |r| r.get(0),
    )?)
}

/// Open a database file that must not change (an archive's copy being verified):
/// read-write without create, because the file is in WAL mode and a read-only connection
/// could not make the `-shm` it needs in a fresh directory; `query_only` keeps it unchanged.
#[tracing::instrument(level = "debug", skip_all)]
pub fn open_unchanged(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA query_only = 1")?;
    Ok(conn)
}
