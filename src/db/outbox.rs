//! The search outbox (DESIGN.md, search index rules): every article change adds a row
//! in its own transaction (`articles::enqueue`); the indexer reads them in order, and
//! deletes them once the index has committed past them.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;
use super::articles::{COLUMNS, from_row_at};
use crate::articles::Article;

/// One pending change for the indexer.
#[derive(Debug, Clone, Copy)]
pub struct OutboxRow {
    pub seq: i64,
    pub article_id: i64,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn outbox_after(
    conn: &Connection,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<OutboxRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, article_id FROM search_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![after_seq, limit], |r| {
            Ok(OutboxRow {
                seq: r.get(0)?,
                article_id: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// What the indexer applies next: outbox rows after a sequence number, with the
/// current state of each article they name.
#[derive(Debug, Default)]
pub struct OutboxBatch {
    /// The highest sequence number read; `None` when the outbox has nothing after.
    pub max_seq: Option<i64>,
    pub rows: usize,
    /// Each article named once, by id: `None` when it was purged.
    pub articles: Vec<(i64, Option<Article>)>,
}

/// The outbox rows after `after_seq` (at most `limit`) and their articles, in one query.
#[tracing::instrument(level = "debug", skip_all)]
pub fn outbox_batch(conn: &Connection, after_seq: i64, limit: u32) -> Result<OutboxBatch, DbError> {
    // Its text is built once: this runs for every indexer batch.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT o.seq, o.article_id, {} FROM search_outbox o \
             LEFT JOIN articles a ON a.id = o.article_id \
             WHERE o.seq > ?1 ORDER BY o.seq LIMIT ?2",
            super::prefixed("a", COLUMNS)
        )
    });
    let mut stmt = conn.prepare_cached(&SQL)?;
    let mut rows = stmt.query(params![after_seq, limit])?;
    let mut batch = OutboxBatch::default();
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = rows.next()? {
        batch.max_seq = Some(r.get(0)?);
        batch.rows += 1;
        let id: i64 = r.get(1)?;
        if seen.insert(id) {
            let present: Option<i64> = r.get(2)?;
            let article = match present {
                Some(_) => Some(from_row_at(r, 2)?),
                None => None,
            };
            batch.articles.push((id, article));
        }
    }
    Ok(batch)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn outbox_delete_through(conn: &Connection, seq: i64) -> Result<usize, DbError> {
    Ok(conn
        .prepare_cached("DELETE FROM search_outbox WHERE seq <= ?1")?
        .execute([seq])?)
}

/// The highest outbox sequence ever handed out (0 if none): a rebuild from a snapshot
/// has applied everything up to it.
#[tracing::instrument(level = "debug", skip_all)]
pub fn outbox_high_water(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'search_outbox'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Pending outbox rows and the time of the oldest.
#[tracing::instrument(level = "debug", skip_all)]
pub fn outbox_backlog(conn: &Connection) -> Result<(u64, Option<String>), DbError> {
    Ok(conn.query_row(
        "SELECT count(*), min(created_at) FROM search_outbox",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )?)
}
