//! The database checks of `doctor`: integrity and foreign keys, migrations, and the
//! schema against the one the embedded migrations build.

use std::collections::BTreeMap;

use rusqlite::Connection;

use crate::db::{inspect, migrations};

use super::{Findings, Level};

pub(super) fn check_integrity(conn: &Connection, f: &mut Findings) {
    match crate::db::damage(conn, true, 20) {
        Ok(r) if r.is_empty() => f.add("integrity", Level::Ok, "integrity_check: ok"),
        Ok(r) => f.add(
            "integrity",
            Level::Fail,
            format!(
                "integrity_check: {}; stop the server and restore the newest verified backup",
                r.join("; ")
            ),
        ),
        Err(e) => f.add(
            "integrity",
            Level::Fail,
            format!("integrity_check failed: {e}"),
        ),
    }
    match inspect::foreign_key_violations(conn) {
        Ok(r) if r.is_empty() => f.add("foreign_keys", Level::Ok, "foreign_key_check: ok"),
        Ok(r) => f.add(
            "foreign_keys",
            Level::Fail,
            format!(
                "{} row(s) point at missing rows (table rowid parent fk): {}",
                r.len(),
                r.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
            ),
        ),
        Err(e) => f.add(
            "foreign_keys",
            Level::Fail,
            format!("foreign_key_check failed: {e}"),
        ),
    }
}

pub(super) fn check_migrations(conn: &Connection, f: &mut Findings) {
    match migrations::status(conn) {
        Ok(st) => {
            let problems = st.problems();
            if !problems.is_empty() {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                f.add("migrations", Level::Fail, text.join("; "));
            } else if !st.is_current() {
                f.add(
                    "migrations",
                    Level::Warn,
                    format!(
                        "{} pending (schema at V{}, binary at V{}); the next start applies them",
                        st.pending().len(),
                        st.current_version(),
                        st.target_version()
                    ),
                );
            } else {
                f.add(
                    "migrations",
                    Level::Ok,
                    format!("schema at V{}, as the binary expects", st.current_version()),
                );
            }
        }
        Err(e) => f.add(
            "migrations",
            Level::Fail,
            format!("cannot read the history: {e}"),
        ),
    }
}

/// Compare the live schema with the one the embedded migrations produce (up to the
/// database's own version, so a pending migration is not called drift).
pub(super) fn check_schema(conn: &Connection, f: &mut Findings) {
    let expected = (|| -> Result<BTreeMap<String, String>, String> {
        let version = inspect::schema_version(conn).map_err(|e| e.to_string())?;
        let mut scratch = Connection::open_in_memory().map_err(|e| e.to_string())?;
        migrations::migrate_to(&mut scratch, version).map_err(|e| e.to_string())?;
        inspect::schema_of(&scratch).map_err(|e| e.to_string())
    })();
    let (expected, live) = match (expected, inspect::schema_of(conn)) {
        (Ok(e), Ok(l)) => (e, l),
        (Err(e), _) => {
            return f.add(
                "schema",
                Level::Warn,
                format!("cannot build the reference schema: {e}"),
            );
        }
        (_, Err(e)) => {
            return f.add(
                "schema",
                Level::Fail,
                format!("cannot read the schema: {e}"),
            );
        }
    };
    let mut drift = Vec::new();
    for (k, v) in &expected {
        match live.get(k) {
            None => drift.push(format!("missing {k}")),
            Some(l) if l != v => drift.push(format!("{k} differs")),
            Some(_) => {}
        }
    }
    for k in live.keys() {
        if !expected.contains_key(k) {
            drift.push(format!("extra {k}"));
        }
    }
    if drift.is_empty() {
        f.add(
            "schema",
            Level::Ok,
            format!("{} objects as the migrations define them", expected.len()),
        );
    } else {
        f.add(
            "schema",
            Level::Fail,
            format!(
                "the schema differs from what the migrations produce ({}); it was changed by hand: restore a backup or recreate what is missing",
                drift.join("; ")
            ),
        );
    }
}
