//! Storage of articles: create/upsert, read, update, soft and hard delete, restore and
//! keyset listing. Every function that changes an article adds a `search_outbox` row in
//! the same transaction (DESIGN.md, search index rules), so the index can never miss a
//! committed change. All functions take the caller's connection or transaction.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use crate::articles::{Article, ArticlePatch, Status, slugify};

mod upsert;
pub use upsert::{Upserted, plan, upsert};

pub(super) const COLUMNS: &str = "id, external_id, slug, title, body, category, tags, status, \
                       created_at, updated_at, published_at, deleted_at";

/// How a client names an article in a URL: a numeric id or a slug.
#[derive(Debug, Clone)]
pub enum ArticleKey {
    Id(i64),
    Slug(String),
}

impl ArticleKey {
    /// All-digit keys are ids (slugs always contain a letter).
    pub fn parse(s: &str) -> ArticleKey {
        match s.parse::<i64>() {
            Ok(id) => ArticleKey::Id(id),
            Err(_) => ArticleKey::Slug(s.to_string()),
        }
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Article> {
    from_row_at(r, 0)
}

/// An article from `COLUMNS` starting at column `at`.
pub(super) fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Article> {
    let tags: String = r.get(at + 6)?;
    let status: String = r.get(at + 7)?;
    Ok(Article {
        id: r.get(at)?,
        external_id: r.get(at + 1)?,
        slug: r.get(at + 2)?,
        title: r.get(at + 3)?,
        body: r.get(at + 4)?,
        category: r.get(at + 5)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        status: Status::parse(&status).unwrap_or(Status::Draft),
        created_at: r.get(at + 8)?,
        updated_at: r.get(at + 9)?,
        published_at: r.get(at + 10)?,
        deleted_at: r.get(at + 11)?,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn get(conn: &Connection, key: &ArticleKey) -> Result<Option<Article>, DbError> {
    let (sql, arg): (String, &dyn ToSql) = match key {
        ArticleKey::Id(id) => (format!("SELECT {COLUMNS} FROM articles WHERE id = ?1"), id),
        ArticleKey::Slug(s) => (format!("SELECT {COLUMNS} FROM articles WHERE slug = ?1"), s),
    };
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([arg], from_row)
        .optional()?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn get_by_id(conn: &Connection, id: i64) -> Result<Option<Article>, DbError> {
    get(conn, &ArticleKey::Id(id))
}

fn enqueue(conn: &Connection, id: i64, now: &str) -> Result<(), DbError> {
    conn.prepare_cached("INSERT INTO search_outbox (article_id, created_at) VALUES (?1, ?2)")?
        .execute(params![id, now])?;
    Ok(())
}

fn set_tags(conn: &Connection, id: i64, tags: &[String]) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM article_tags WHERE article_id = ?1")?
        .execute([id])?;
    let mut ins =
        conn.prepare_cached("INSERT INTO article_tags (tag, article_id) VALUES (?1, ?2)")?;
    for t in tags {
        ins.execute(params![t, id])?;
    }
    Ok(())
}

fn slug_taken(conn: &Connection, slug: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM articles WHERE slug = ?1")?
        .query_row([slug], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A free slug derived from the title: `title`, else `title-N` with N one above the
/// highest numeric suffix in use (one indexed range scan, not a probe per number).
fn unique_slug(conn: &Connection, title: &str) -> Result<String, DbError> {
    let base = slugify(title);
    if !slug_taken(conn, &base)? {
        return Ok(base);
    }
    // Slugs hold only [a-z0-9-], so the base has no GLOB metacharacters.
    let prefix = format!("{base}-");
    let mut stmt = conn.prepare_cached("SELECT slug FROM articles WHERE slug GLOB ?1")?;
    let highest = stmt
        .query_map([format!("{prefix}[0-9]*")], |r| r.get::<_, String>(0))?
        .filter_map(Result::ok)
        .filter_map(|s| s.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(1);
    let candidate = format!("{prefix}{}", highest.saturating_add(1));
    if candidate.len() > crate::articles::SLUG_MAX_CHARS || slug_taken(conn, &candidate)? {
        return Err(DbError::Unique {
            target: "articles.slug".into(),
        });
    }
    Ok(candidate)
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// `published_at` after a change to `status`: set when an article becomes published,
/// kept while it stays published, cleared when it goes back to draft.
fn published_at(old: &Article, status: Status, now: &str) -> Option<String> {
    match (old.status, status) {
        (_, Status::Draft) => None,
        (Status::Published, Status::Published) => old.published_at.clone(),
        (Status::Draft, Status::Published) => Some(now.to_string()),
    }
}

/// Apply a patch to a live (not soft-deleted) article (`Ok(None)`: there is none), only
/// when `if_match` is None or the article is still at that version (its
/// [`Article::etag`]); `Err(current)` when it moved on. Checked inside the write, so no
/// other change can slip in between.
pub fn update_if(
    conn: &Connection,
    key: &ArticleKey,
    patch: &ArticlePatch,
    now: &str,
    if_match: Option<&str>,
) -> Result<Result<Option<Article>, Box<Article>>, DbError> {
    let Some(old) = get(conn, key)?.filter(|a| a.deleted_at.is_none()) else {
        return Ok(Ok(None));
    };
    if let Some(expected) = if_match
        && expected != "*"
        && !expected.split(',').any(|t| t.trim() == old.etag())
    {
        return Ok(Err(Box::new(old)));
    }
    let status = patch.status.unwrap_or(old.status);
    let tags = patch.tags.clone().unwrap_or(old.tags.clone());
    conn.prepare_cached(
        "UPDATE articles SET slug = ?2, title = ?3, body = ?4, category = ?5, tags = ?6,
             status = ?7, updated_at = ?8, published_at = ?9
         WHERE id = ?1",
    )?
    .execute(params![
        old.id,
        patch.slug.as_ref().unwrap_or(&old.slug),
        patch.title.as_ref().unwrap_or(&old.title),
        patch.body.as_ref().unwrap_or(&old.body),
        patch.category.clone().unwrap_or(old.category.clone()),
        tags_json(&tags),
        status.as_str(),
        now,
        published_at(&old, status, now)
    ])?;
    if patch.tags.is_some() {
        set_tags(conn, old.id, &tags)?;
    }
    enqueue(conn, old.id, now)?;
    get_by_id(conn, old.id).map(Ok)
}

/// Soft delete: the row stays (for restore and `cleanup`), readers and search lose it.
#[tracing::instrument(level = "debug", skip_all)]
pub fn soft_delete(conn: &Connection, key: &ArticleKey, now: &str) -> Result<bool, DbError> {
    let Some(a) = get(conn, key)?.filter(|a| a.deleted_at.is_none()) else {
        return Ok(false);
    };
    conn.prepare_cached("UPDATE articles SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1")?
        .execute(params![a.id, now])?;
    enqueue(conn, a.id, now)?;
    Ok(true)
}

/// Undo a soft delete.
#[tracing::instrument(level = "debug", skip_all)]
pub fn restore(conn: &Connection, key: &ArticleKey, now: &str) -> Result<Option<Article>, DbError> {
    let Some(a) = get(conn, key)?.filter(|a| a.deleted_at.is_some()) else {
        return Ok(None);
    };
    conn.prepare_cached("UPDATE articles SET deleted_at = NULL, updated_at = ?2 WHERE id = ?1")?
        .execute(params![a.id, now])?;
    enqueue(conn, a.id, now)?;
    get_by_id(conn, a.id)
}

/// Hard delete (live or soft-deleted); tags go with it.
#[tracing::instrument(level = "debug", skip_all)]
pub fn purge(conn: &Connection, key: &ArticleKey, now: &str) -> Result<bool, DbError> {
    let Some(a) = get(conn, key)? else {
        return Ok(false);
    };
    conn.prepare_cached("DELETE FROM articles WHERE id = ?1")?
        .execute([a.id])?;
    enqueue(conn, a.id, now)?;
    Ok(true)
}

/// Filters and keyset position of `GET /api/articles`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub category: Option<String>,
    pub status: Option<Status>,
    pub tag: Option<String>,
    /// Only articles updated at or after this (same format as stored times).
    pub updated_since: Option<String>,
    /// Only articles with an id below this (the previous page's cursor).
    pub before_id: Option<i64>,
    pub limit: u32,
    /// The trash instead: soft-deleted articles only.
    pub deleted: bool,
}

/// Newest first (by id, which never changes), so pages stay stable while articles are
/// added: a new article has a higher id and lands before page one, never inside a page.
/// Returns the page and the cursor of the next one.
#[tracing::instrument(level = "debug", skip_all)]
pub fn list(conn: &Connection, f: &ListFilter) -> Result<(Vec<Article>, Option<i64>), DbError> {
    let (mut sql, mut args) = filtered("SELECT {COLUMNS} FROM articles", f);
    sql = sql.replace("{COLUMNS}", COLUMNS);
    if let Some(b) = &f.before_id {
        args.push(b);
        sql += &format!(" AND id < ?{}", args.len());
    }
    let fetch = i64::from(f.limit) + 1;
    args.push(&fetch);
    sql += &format!(" ORDER BY id DESC LIMIT ?{}", args.len());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<Article> = stmt
        .query_map(args.as_slice(), from_row)?
        .collect::<Result<_, _>>()?;
    let next = if rows.len() > f.limit as usize {
        rows.truncate(f.limit as usize);
        rows.last().map(|a| a.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// How many articles the filter matches across all pages (its cursor and limit aside).
#[tracing::instrument(level = "debug", skip_all)]
pub fn count(conn: &Connection, f: &ListFilter) -> Result<u64, DbError> {
    let (sql, args) = filtered("SELECT count(*) FROM articles", f);
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(args.as_slice(), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `head` with the filter's WHERE clause (all but the cursor) and its arguments.
fn filtered<'f>(head: &str, f: &'f ListFilter) -> (String, Vec<&'f dyn ToSql>) {
    let which = if f.deleted {
        "deleted_at IS NOT NULL"
    } else {
        "deleted_at IS NULL"
    };
    let mut sql = format!("{head} WHERE {which}");
    let mut args: Vec<&dyn ToSql> = Vec::new();
    if let Some(c) = &f.category {
        args.push(c);
        sql += &format!(" AND category = ?{}", args.len());
    }
    if let Some(s) = &f.status {
        args.push(match s {
            Status::Draft => &"draft",
            Status::Published => &"published",
        });
        sql += &format!(" AND status = ?{}", args.len());
    }
    if let Some(t) = &f.tag {
        args.push(t);
        sql += &format!(
            " AND id IN (SELECT article_id FROM article_tags WHERE tag = ?{})",
            args.len()
        );
    }
    if let Some(u) = &f.updated_since {
        args.push(u);
        sql += &format!(" AND updated_at >= ?{}", args.len());
    }
    (sql, args)
}

/// Every live article, in id order, for export and index rebuilds.
#[tracing::instrument(level = "debug", skip_all)]
pub fn for_each_live(
    conn: &Connection,
    mut f: impl FnMut(Article) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM articles WHERE deleted_at IS NULL ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        f(from_row(r)?)?;
    }
    Ok(())
}

/// Article counts for the dashboard: live published, live drafts, soft-deleted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct Counts {
    pub published: u64,
    pub draft: u64,
    pub deleted: u64,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn counts(conn: &Connection) -> Result<Counts, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT deleted_at IS NOT NULL, status, count(*) FROM articles GROUP BY 1, 2",
    )?;
    let mut rows = stmt.query([])?;
    let mut c = Counts::default();
    while let Some(r) = rows.next()? {
        let deleted: bool = r.get(0)?;
        let status: String = r.get(1)?;
        let n = u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0);
        match (deleted, status.as_str()) {
            (true, _) => c.deleted += n,
            (false, "published") => c.published += n,
            (false, _) => c.draft += n,
        }
    }
    Ok(c)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn count_live(conn: &Connection) -> Result<u64, DbError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM articles WHERE deleted_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}
