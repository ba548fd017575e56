//! Storage of error events (migration V5's `error_groups`): each event upserted into
//! its group by fingerprint, the listing the API and the CLI show, and the background
//! writer that drains the tracker's queue (`telemetry::errors::Tracker`) in batches.

use rusqlite::{Connection, params};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Db, DbError};
use crate::telemetry::errors::{ErrorEvent, fingerprint};

/// Store events as they come, in batches, until `stop`; then drain what is queued.
pub fn spawn_writer(
    db: Db,
    mut rx: mpsc::Receiver<ErrorEvent>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                e = rx.recv() => e,
                () = crate::shutdown::stopped(&mut stop) => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            store_batch(&db, batch).await;
        }
        let mut rest = Vec::new();
        while let Ok(e) = rx.try_recv() {
            rest.push(e);
        }
        if !rest.is_empty() {
            store_batch(&db, rest).await;
        }
    })
}

async fn store_batch(db: &Db, batch: Vec<ErrorEvent>) {
    let n = batch.len();
    let res = db
        .write(move |c| {
            for e in &batch {
                store(c, e)?;
            }
            Ok::<_, DbError>(())
        })
        .await;
    if let Err(e) = res {
        // Not recorded as an error event: that could loop while the database is down.
        tracing::error!(error = %e, events = n, "cannot store error events");
    }
}

/// Upsert one event into its group.
#[tracing::instrument(level = "debug", skip_all)]
pub fn store(c: &Connection, e: &ErrorEvent) -> Result<(), DbError> {
    let now = crate::clock::now();
    c.execute(
        "INSERT INTO error_groups (fingerprint, category, severity, component, operation, message, count, first_seen, last_seen, last_request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?8)
         ON CONFLICT (fingerprint) DO UPDATE SET
           count = count + 1, last_seen = excluded.last_seen, message = excluded.message,
           last_request_id = coalesce(excluded.last_request_id, last_request_id),
           severity = CASE WHEN excluded.severity = 'critical' OR severity = 'critical' THEN 'critical'
                           WHEN excluded.severity = 'high' OR severity = 'high' THEN 'high'
                           WHEN excluded.severity = 'medium' OR severity = 'medium' THEN 'medium'
                           ELSE 'low' END",
        params![
            fingerprint(e),
            e.category.as_str(),
            e.severity.as_str(),
            e.component,
            e.operation,
            e.message,
            now,
            e.request_id
        ],
    )?;
    Ok(())
}

/// A stored group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub fingerprint: String,
    pub category: String,
    pub severity: String,
    pub component: String,
    pub operation: String,
    pub message: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub last_request_id: Option<String>,
}

/// Filters of a listing (each narrows it); newest `last_seen` first.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub category: Option<String>,
    pub severity: Option<String>,
    pub component: Option<String>,
    /// Only groups seen at or after this RFC 3339 time.
    pub since: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn list(c: &Connection, f: &Filter) -> Result<Vec<Group>, DbError> {
    let mut stmt = c.prepare(
        "SELECT fingerprint, category, severity, component, operation, message, count, first_seen, last_seen, last_request_id
         FROM error_groups
         WHERE (?1 IS NULL OR category = ?1) AND (?2 IS NULL OR severity = ?2)
           AND (?3 IS NULL OR component = ?3) AND (?4 IS NULL OR last_seen >= ?4)
         ORDER BY last_seen DESC, fingerprint LIMIT ?5 OFFSET ?6",
    )?;
    let rows = stmt.query_map(
        params![
            f.category,
            f.severity,
            f.component,
            f.since,
            f.limit,
            f.offset
        ],
        |r| {
            Ok(Group {
                fingerprint: r.get(0)?,
                category: r.get(1)?,
                severity: r.get(2)?,
                component: r.get(3)?,
                operation: r.get(4)?,
                message: r.get(5)?,
                count: r.get(6)?,
                first_seen: r.get(7)?,
                last_seen: r.get(8)?,
                last_request_id: r.get(9)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
