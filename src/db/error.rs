//! Typed database errors. Every SQLite failure is classified here once, so that the HTTP
//! layer can answer unique → 409, foreign key → 422, busy/full → 503 without looking at
//! error strings elsewhere.

use rusqlite::ErrorCode;
use rusqlite::ffi;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A UNIQUE or PRIMARY KEY constraint; `target` is `table.column[, …]`.
    #[error("{target} already exists")]
    Unique { target: String },
    #[error("a referenced row does not exist ({message})")]
    ForeignKey { message: String },
    /// NOT NULL, CHECK and other constraints.
    #[error("constraint failed: {message}")]
    Constraint { message: String },
    /// The writer, a reader or a SQLite lock was not available in time.
    #[error("the database is busy: {message}; retry shortly")]
    Busy { message: String },
    #[error("the disk holding the database is full; free space in the data directory")]
    DiskFull,
    #[error(
        "the database file is corrupt or not a database ({message}); stop the service and restore the latest backup (appliance restore NAME)"
    )]
    Corrupt { message: String },
    #[error("the database is read-only: {message}")]
    ReadOnly { message: String },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// The same error again, for each of several callers (a failed group commit is every
    /// member's failure). rusqlite's error is not Clone, so it becomes its message.
    pub fn replicate(&self) -> DbError {
        match self {
            DbError::Unique { target } => DbError::Unique {
                target: target.clone(),
            },
            DbError::ForeignKey { message } => DbError::ForeignKey {
                message: message.clone(),
            },
            DbError::Constraint { message } => DbError::Constraint {
                message: message.clone(),
            },
            DbError::Busy { message } => DbError::Busy {
                message: message.clone(),
            },
            DbError::DiskFull => DbError::DiskFull,
            DbError::Corrupt { message } => DbError::Corrupt {
                message: message.clone(),
            },
            DbError::ReadOnly { message } => DbError::ReadOnly {
                message: message.clone(),
            },
            DbError::Sqlite(e) => DbError::Other(format!("database error: {e}")),
            DbError::Other(m) => DbError::Other(m.clone()),
        }
    }

    /// A failure a client may retry after a moment (answered with 503).
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Busy { .. } | DbError::DiskFull)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        let rusqlite::Error::SqliteFailure(code, message) = &err else {
            return DbError::Sqlite(err);
        };
        let message = message.clone().unwrap_or_else(|| code.to_string());
        match code.code {
            ErrorCode::ConstraintViolation => match code.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    // "UNIQUE constraint failed: articles.slug"
                    let target = message
                        .split_once(": ")
                        .map(|(_, t)| t.to_string())
                        .unwrap_or(message);
                    DbError::Unique { target }
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbError::ForeignKey { message },
                _ => DbError::Constraint { message },
            },
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbError::Busy { message },
            ErrorCode::DiskFull => DbError::DiskFull,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => DbError::Corrupt { message },
            ErrorCode::ReadOnly => DbError::ReadOnly { message },
            _ => DbError::Sqlite(err),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(err: r2d2::Error) -> Self {
        DbError::Busy {
            message: format!("no reader connection available ({err})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys=ON;
             CREATE TABLE p(id INTEGER PRIMARY KEY, slug TEXT UNIQUE NOT NULL);
             CREATE TABLE c(id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES p(id));
             INSERT INTO p(id, slug) VALUES (1, 'a');",
        )
        .unwrap();
        c
    }

    #[test]
    fn constraint_errors_are_classified() {
        let c = conn();
        let e: DbError = c
            .execute("INSERT INTO p(slug) VALUES ('a')", [])
            .unwrap_err()
            .into();
        assert!(
            matches!(&e, DbError::Unique { target } if target == "p.slug"),
            "{e:?}"
        );
        let e: DbError = c
            .execute("INSERT INTO c(p) VALUES (99)", [])
            .unwrap_err()
            .into();
        assert!(matches!(e, DbError::ForeignKey { .. }), "{e:?}");
        let e: DbError = c
            .execute("INSERT INTO p(slug) VALUES (NULL)", [])
            .unwrap_err()
            .into();
        assert!(matches!(e, DbError::Constraint { .. }), "{e:?}");
    }
}
