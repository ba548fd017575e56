//! Housekeeping of the database, for `appliance cleanup` and its scheduled part inside
//! `serve` (`ops::cleanup`). Each task surveys first (what it would do, counted) and applies only when
//! asked:
//!
//! - retention: sessions past their timeouts, API tokens expired or revoked longer than
//!   `cleanup.token_retention_days`, used or expired reset links, audit entries older
//!   than `cleanup.audit_retention_days`, error groups not seen for
//!   `cleanup.error_retention_days` — the *safe* part, also run on `cleanup.schedule`;
//! - soft-deleted articles older than `cleanup.deleted_retention_days` (CLI `--apply`
//!   only, after a backup);
//! - integrity findings that constraints should have prevented: orphaned rows and
//!   duplicate rows, reported always, removed only with `--fix-orphans` /
//!   `--remove-duplicates`;
//! - `PRAGMA optimize`, and `VACUUM` when free pages exceed `cleanup.vacuum_min_free_ratio`
//!   (CLI only, server stopped: it rewrites the whole file).

use rusqlite::Connection;
use serde::Serialize;

use super::DbError;
use crate::clock;
use crate::config::{CleanupConfig, SecurityConfig};

/// One line of a cleanup report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    /// Stable name: `sessions`, `tokens`, `reset_links`, `audit`, `errors`,
    /// `deleted_articles`, `orphans.<table>`, `duplicates.<what>`, `optimize`, `vacuum`.
    pub task: String,
    /// Rows (or pages, for vacuum) concerned.
    pub count: u64,
    pub detail: String,
    /// Whether it was done (false in a dry run or when it needs a flag).
    pub applied: bool,
}

impl Task {
    fn new(task: impl Into<String>, count: u64, detail: impl Into<String>) -> Task {
        Task {
            task: task.into(),
            count,
            detail: detail.into(),
            applied: false,
        }
    }
}

fn ago(d: time::Duration) -> String {
    clock::format(time::OffsetDateTime::now_utc() - d)
}

fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

/// Cut-off times of the retention tasks.
pub struct Cutoffs {
    pub now: String,
    pub session_idle: String,
    pub tokens: String,
    pub audit: String,
    pub errors: String,
    pub deleted: String,
}

impl Cutoffs {
    pub fn new(c: &CleanupConfig, s: &SecurityConfig) -> Cutoffs {
        Cutoffs {
            now: crate::clock::now(),
            session_idle: ago(s.session_idle()),
            tokens: ago(days(c.token_retention_days)),
            audit: ago(days(c.audit_retention_days)),
            errors: ago(days(c.error_retention_days)),
            deleted: ago(days(c.deleted_retention_days)),
        }
    }
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<u64, DbError> {
    let n: i64 = conn.query_row(sql, p, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

const SESSIONS: &str = "FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2";
const TOKENS: &str = "FROM api_tokens WHERE (revoked_at IS NOT NULL AND revoked_at <= ?1) OR (expires_at IS NOT NULL AND expires_at <= ?1)";
const RESETS: &str = "FROM password_resets WHERE used_at IS NOT NULL OR expires_at <= ?1";
const AUDIT: &str = "FROM audit_log WHERE at < ?1";
const ERRORS: &str = "FROM error_groups WHERE last_seen < ?1";
const DELETED: &str = "FROM articles WHERE deleted_at IS NOT NULL AND deleted_at < ?1";

/// The retention tasks (safe to run at any time): survey, or apply when `apply`.
#[tracing::instrument(level = "debug", skip_all)]
pub fn retention(
    conn: &Connection,
    c: &CleanupConfig,
    cut: &Cutoffs,
    apply: bool,
) -> Result<Vec<Task>, DbError> {
    let jobs: [(&str, &str, Vec<&str>, String); 5] = [
        (
            "sessions",
            SESSIONS,
            vec![&cut.now, &cut.session_idle],
            "sessions past their idle or absolute timeout".into(),
        ),
        (
            "tokens",
            TOKENS,
            vec![&cut.tokens],
            format!(
                "API tokens expired or revoked more than {} days ago",
                c.token_retention_days
            ),
        ),
        (
            "reset_links",
            RESETS,
            vec![&cut.now],
            "password-reset links used or expired".into(),
        ),
        (
            "audit",
            AUDIT,
            vec![&cut.audit],
            format!("audit entries older than {} days", c.audit_retention_days),
        ),
        (
            "errors",
            ERRORS,
            vec![&cut.errors],
            format!("error groups not seen for {} days", c.error_retention_days),
        ),
    ];
    let mut tasks = Vec::new();
    for (name, from, p, detail) in jobs {
        let p = rusqlite::params_from_iter(p);
        let mut t = Task::new(
            name,
            count(conn, &format!("SELECT count(*) {from}"), p.clone())?,
            detail,
        );
        if apply && t.count > 0 {
            conn.execute(&format!("DELETE {from}"), p)?;
            t.applied = true;
        }
        tasks.push(t);
    }
    Ok(tasks)
}

/// Soft-deleted articles past `cleanup.deleted_retention_days`: purged for good (the
/// search index is told through the outbox, as for `DELETE ?purge=true`).
#[tracing::instrument(level = "debug", skip_all)]
pub fn deleted_articles(
    conn: &Connection,
    c: &CleanupConfig,
    cut: &Cutoffs,
    apply: bool,
) -> Result<Task, DbError> {
    let mut t = Task::new(
        "deleted_articles",
        count(conn, &format!("SELECT count(*) {DELETED}"), [&cut.deleted])?,
        format!(
            "articles soft-deleted more than {} days ago",
            c.deleted_retention_days
        ),
    );
    if apply && t.count > 0 {
        let ids: Vec<i64> = conn
            .prepare(&format!("SELECT id {DELETED}"))?
            .query_map([&cut.deleted], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            crate::db::articles::purge(conn, &crate::db::articles::ArticleKey::Id(id), &cut.now)?;
        }
        t.applied = true;
    }
    Ok(t)
}

/// Rows whose parent is gone (possible only if foreign keys were off when it happened).
const ORPHANS: [(&str, &str); 5] = [
    (
        "article_tags",
        "FROM article_tags WHERE article_id NOT IN (SELECT id FROM articles)",
    ),
    (
        "sessions",
        "FROM sessions WHERE user_id NOT IN (SELECT id FROM users)",
    ),
    (
        "api_tokens",
        "FROM api_tokens WHERE user_id NOT IN (SELECT id FROM users)",
    ),
    (
        "password_resets",
        "FROM password_resets WHERE user_id NOT IN (SELECT id FROM users)",
    ),
    (
        "audit_log",
        "FROM audit_log WHERE actor_id IS NOT NULL AND actor_id NOT IN (SELECT id FROM users)",
    ),
];

/// Orphaned rows per table; deleted when `fix` (audit entries keep their actor name and
/// lose only the dangling id).
#[tracing::instrument(level = "debug", skip_all)]
pub fn orphans(conn: &Connection, fix: bool) -> Result<Vec<Task>, DbError> {
    let mut tasks = Vec::new();
    for (table, from) in ORPHANS {
        let n = count(conn, &format!("SELECT count(*) {from}"), [])?;
        let mut t = Task::new(
            format!("orphans.{table}"),
            n,
            format!("{table} rows whose parent row is gone"),
        );
        if fix && n > 0 {
            if table == "audit_log" {
                conn.execute(
                    "UPDATE audit_log SET actor_id = NULL WHERE actor_id IS NOT NULL AND actor_id NOT IN (SELECT id FROM users)",
                    [],
                )?;
            } else {
                conn.execute(&format!("DELETE {from}"), [])?;
            }
            t.applied = true;
        }
        tasks.push(t);
    }
    Ok(tasks)
}

/// Duplicates a unique index should prevent (possible only if the index was dropped).
/// `(name, extra rows, delete-all-but-lowest-id statement)`.
const DUPLICATES: [(&str, &str, &str); 4] = [
    (
        "articles.slug",
        "SELECT count(*) FROM articles a WHERE EXISTS (SELECT 1 FROM articles b WHERE b.slug = a.slug AND b.id < a.id)",
        "DELETE FROM articles WHERE EXISTS (SELECT 1 FROM articles b WHERE b.slug = articles.slug AND b.id < articles.id)",
    ),
    (
        "articles.external_id",
        "SELECT count(*) FROM articles a WHERE a.external_id IS NOT NULL AND EXISTS (SELECT 1 FROM articles b WHERE b.external_id = a.external_id AND b.id < a.id)",
        "DELETE FROM articles WHERE external_id IS NOT NULL AND EXISTS (SELECT 1 FROM articles b WHERE b.external_id = articles.external_id AND b.id < articles.id)",
    ),
    (
        "users.email",
        "SELECT count(*) FROM users a WHERE EXISTS (SELECT 1 FROM users b WHERE b.email = a.email COLLATE NOCASE AND b.id < a.id)",
        "DELETE FROM users WHERE EXISTS (SELECT 1 FROM users b WHERE b.email = users.email COLLATE NOCASE AND b.id < users.id)",
    ),
    (
        "api_tokens.prefix",
        "SELECT count(*) FROM api_tokens a WHERE EXISTS (SELECT 1 FROM api_tokens b WHERE b.prefix = a.prefix AND b.id < a.id)",
        "DELETE FROM api_tokens WHERE EXISTS (SELECT 1 FROM api_tokens b WHERE b.prefix = api_tokens.prefix AND b.id < api_tokens.id)",
    ),
];

/// Duplicate rows (all but the oldest of each group); removed when `remove`. Removed
/// articles are told to the search index through the outbox.
#[tracing::instrument(level = "debug", skip_all)]
pub fn duplicates(conn: &Connection, remove: bool, now: &str) -> Result<Vec<Task>, DbError> {
    let mut tasks = Vec::new();
    for (name, count_sql, delete_sql) in DUPLICATES {
        let n = count(conn, count_sql, [])?;
        let mut t = Task::new(
            format!("duplicates.{name}"),
            n,
            format!("rows repeating an existing {name} (the oldest of each is kept)"),
        );
        if remove && n > 0 {
            if name.starts_with("articles.") {
                let ids: Vec<i64> = conn
                    .prepare(&delete_sql.replacen(
                        "DELETE FROM articles",
                        "SELECT id FROM articles",
                        1,
                    ))?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for id in ids {
                    crate::db::articles::purge(
                        conn,
                        &crate::db::articles::ArticleKey::Id(id),
                        now,
                    )?;
                }
            } else {
                conn.execute(delete_sql, [])?;
            }
            t.applied = true;
        }
        tasks.push(t);
    }
    Ok(tasks)
}

/// Free pages against the database size: (free pages, page count, page size).
#[tracing::instrument(level = "debug", skip_all)]
pub fn free_pages(conn: &Connection) -> Result<(u64, u64, u64), DbError> {
    let get = |p: &str| -> Result<u64, DbError> {
        let n: i64 = conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok((
        get("freelist_count")?,
        get("page_count")?,
        get("page_size")?,
    ))
}

/// Whether `VACUUM` is worth it, and the task describing it.
#[tracing::instrument(level = "debug", skip_all)]
pub fn vacuum_task(conn: &Connection, c: &CleanupConfig) -> Result<(bool, Task), DbError> {
    let (free, pages, size) = free_pages(conn)?;
    let ratio = if pages == 0 {
        0.0
    } else {
        free as f64 / pages as f64
    };
    let needed =
        pages > 0 && ratio >= c.vacuum_min_free_ratio && free * size >= c.vacuum_min_free_bytes;
    let t = Task::new(
        "vacuum",
        free,
        format!(
            "{free} of {pages} pages free ({:.0}%, {} KiB); vacuum when at least {:.0}% and {} KiB",
            ratio * 100.0,
            free * size / 1024,
            c.vacuum_min_free_ratio * 100.0,
            c.vacuum_min_free_bytes / 1024
        ),
    );
    Ok((needed, t))
}

/// Remove expired rows past retention in one go (the scheduled, safe part), then
/// `PRAGMA optimize`. Returns what was removed.
#[tracing::instrument(level = "debug", skip_all)]
pub fn run_safe(
    conn: &Connection,
    c: &CleanupConfig,
    s: &SecurityConfig,
) -> Result<Vec<Task>, DbError> {
    let cut = Cutoffs::new(c, s);
    let mut tasks = retention(conn, c, &cut, true)?;
    tasks.push(optimize(conn)?);
    Ok(tasks)
}

/// `PRAGMA optimize` (cheap: re-analyses only what the query planner would benefit from).
#[tracing::instrument(level = "debug", skip_all)]
pub fn optimize(conn: &Connection) -> Result<Task, DbError> {
    conn.execute_batch("PRAGMA optimize;")?;
    let mut t = Task::new("optimize", 0, "PRAGMA optimize (query planner statistics)");
    t.applied = true;
    Ok(t)
}

/// Audit entry parameters for an applied cleanup.
pub fn summary(tasks: &[Task]) -> serde_json::Value {
    serde_json::Value::Object(
        tasks
            .iter()
            .filter(|t| t.applied && t.count > 0)
            .map(|t| (t.task.clone(), serde_json::Value::from(t.count)))
            .collect(),
    )
}

/// A command's own connection for cleanup (foreign keys on, waiting for the server's
/// writer up to `busy_timeout`).
#[tracing::instrument(level = "debug", skip_all)]
pub fn open(
    path: &std::path::Path,
    busy_timeout: std::time::Duration,
) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Everything `--apply` removes, in one transaction with its audit entry (made from the
/// tasks by `audit`).
#[tracing::instrument(level = "debug", skip_all)]
pub fn apply(
    conn: &mut Connection,
    c: &CleanupConfig,
    cut: &Cutoffs,
    fix_orphans: bool,
    remove_duplicates: bool,
    audit: impl FnOnce(&[Task]) -> super::audit::Event,
) -> Result<Vec<Task>, DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut tasks = retention(&tx, c, cut, true)?;
    tasks.push(deleted_articles(&tx, c, cut, true)?);
    tasks.extend(orphans(&tx, fix_orphans)?);
    tasks.extend(duplicates(&tx, remove_duplicates, &cut.now)?);
    super::audit::record(&tx, &audit(&tasks))?;
    tx.commit()?;
    Ok(tasks)
}

/// `VACUUM`: rewrites the whole file (only with no server running).
#[tracing::instrument(level = "debug", skip_all)]
pub fn vacuum(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch("VACUUM;")?;
    Ok(())
}
