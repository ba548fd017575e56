//! Creates that are upserts by `external_id`: insert, replace, or leave alone when the
//! stored article already is as given (so a rerun of an import writes nothing).

use rusqlite::{Connection, OptionalExtension, params};

use super::{enqueue, get_by_id, published_at, set_tags, tags_json, unique_slug};
use crate::articles::{Article, NewArticle, Status};
use crate::db::DbError;

/// What [`upsert`] did (or, for [`plan`], would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The article with that `external_id` already had every field as given: nothing
    /// was written (no new `updated_at`, no re-index), so re-running an import is free.
    Unchanged,
}

/// Whether `new` would leave `old` as it is.
fn unchanged(old: &Article, new: &NewArticle) -> bool {
    let same_stamp =
        |given: &Option<String>, stored: &Option<String>| given.is_none() || given == stored;
    old.deleted_at.is_none()
        && new.slug.as_ref().is_none_or(|s| *s == old.slug)
        && old.title == new.title
        && old.body == new.body
        && old.category == new.category
        && old.tags == new.tags
        && old.status == new.status
        && same_stamp(&new.stamps.created_at, &Some(old.created_at.clone()))
        && same_stamp(&new.stamps.updated_at, &Some(old.updated_at.clone()))
        && (new.status == Status::Draft || same_stamp(&new.stamps.published_at, &old.published_at))
}

fn by_external_id(conn: &Connection, ext: Option<&String>) -> Result<Option<i64>, DbError> {
    Ok(match ext {
        Some(ext) => conn
            .prepare_cached("SELECT id FROM articles WHERE external_id = ?1")?
            .query_row([ext], |r| r.get::<_, i64>(0))
            .optional()?,
        None => None,
    })
}

/// What [`upsert`] would do with `new`, writing nothing (an import's dry run).
pub fn plan(conn: &Connection, new: &NewArticle) -> Result<Upserted, DbError> {
    let Some(id) = by_external_id(conn, new.external_id.as_ref())? else {
        return Ok(Upserted::Created);
    };
    let old = get_by_id(conn, id)?.ok_or_else(|| DbError::Other("article vanished".into()))?;
    Ok(if unchanged(&old, new) {
        Upserted::Unchanged
    } else {
        Upserted::Updated
    })
}

/// Create an article; when `external_id` names an existing one (even soft-deleted),
/// replace its fields instead (and undelete it), so a retried ingest never duplicates;
/// when that one already is as given, leave it alone ([`Upserted::Unchanged`]).
/// `new.stamps` (an import's times) take the place of `now` where given.
#[tracing::instrument(level = "debug", skip_all)]
pub fn upsert(
    conn: &Connection,
    new: &NewArticle,
    now: &str,
) -> Result<(Article, Upserted), DbError> {
    if let Some(id) = by_external_id(conn, new.external_id.as_ref())? {
        let old = get_by_id(conn, id)?.ok_or_else(|| DbError::Other("article vanished".into()))?;
        if unchanged(&old, new) {
            return Ok((old, Upserted::Unchanged));
        }
        let slug = new.slug.clone().unwrap_or(old.slug.clone());
        let published_at = match new.status {
            Status::Draft => None,
            Status::Published => new
                .stamps
                .published_at
                .clone()
                .or_else(|| published_at(&old, new.status, now)),
        };
        let updated_at = new.stamps.updated_at.as_deref().unwrap_or(now);
        let created_at = new.stamps.created_at.as_deref().unwrap_or(&old.created_at);
        conn.prepare_cached(
            "UPDATE articles SET slug = ?2, title = ?3, body = ?4, category = ?5, tags = ?6,
                 status = ?7, updated_at = ?8, published_at = ?9, created_at = ?10,
                 deleted_at = NULL
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            slug,
            new.title,
            new.body,
            new.category,
            tags_json(&new.tags),
            new.status.as_str(),
            updated_at,
            published_at,
            created_at
        ])?;
        set_tags(conn, id, &new.tags)?;
        enqueue(conn, id, now)?;
        let a = get_by_id(conn, id)?.ok_or_else(|| DbError::Other("article vanished".into()))?;
        return Ok((a, Upserted::Updated));
    }
    let slug = match &new.slug {
        Some(s) => s.clone(),
        None => unique_slug(conn, &new.title)?,
    };
    let created_at = new.stamps.created_at.as_deref().unwrap_or(now);
    let updated_at = match (&new.stamps.updated_at, &new.stamps.created_at) {
        (Some(u), _) | (None, Some(u)) => u.as_str(),
        (None, None) => now,
    };
    let published_at = (new.status == Status::Published)
        .then(|| new.stamps.published_at.as_deref().unwrap_or(now));
    conn.prepare_cached(
        "INSERT INTO articles (external_id, slug, title, body, category, tags, status,
                               created_at, updated_at, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        new.external_id,
        slug,
        new.title,
        new.body,
        new.category,
        tags_json(&new.tags),
        new.status.as_str(),
        created_at,
        updated_at,
        published_at
    ])?;
    let id = conn.last_insert_rowid();
    let mut ins =
        conn.prepare_cached("INSERT INTO article_tags (tag, article_id) VALUES (?1, ?2)")?;
    for t in &new.tags {
        ins.execute(params![t, id])?;
    }
    enqueue(conn, id, now)?;
    // Everything stored is known here: no need to read the row back.
    let a = Article {
        id,
        external_id: new.external_id.clone(),
        slug,
        title: new.title.clone(),
        body: new.body.clone(),
        category: new.category.clone(),
        tags: new.tags.clone(),
        status: new.status,
        created_at: created_at.to_string(),
        updated_at: updated_at.to_string(),
        published_at: published_at.map(str::to_string),
        deleted_at: None,
    };
    Ok((a, Upserted::Created))
}
