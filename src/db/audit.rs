//! The audit log (migration V4): one row per security-relevant event (logins and their
//! failures, lockouts, user and role changes, API tokens, backups, restores, index
//! rebuilds). Rows are only ever appended here; trimming past a retention belongs to
//! `appliance cleanup`. Callers must never put a password, hash or token in an event.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::DbError;
use crate::clock::now;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    /// Refused by policy (rate limit, lockout, role).
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor_id: Option<i64>,
    /// Email of the acting user, `cli:<login>`, `system` or `anonymous`.
    pub actor: String,
    /// Dotted name, e.g. `auth.login`, `user.role_change`, `backup.create`.
    pub action: &'static str,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: &'static str, outcome: Outcome) -> Event {
        Event {
            actor_id: None,
            actor: actor.into(),
            action,
            target: None,
            outcome,
            ip: None,
            request_id: None,
            details: Value::Null,
        }
    }
    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }
    pub fn details(mut self, details: Value) -> Event {
        self.details = details;
        self
    }
}

/// The actor name of a CLI invocation: `cli:<login name>` (from `$SUDO_USER`/`$USER`).
pub fn cli_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

/// Longest actor, target, IP or request id stored (characters); longer ones are cut.
pub const FIELD_MAX_CHARS: usize = 320;
/// Largest `details` stored (bytes of JSON); larger ones are replaced by a note of their
/// size, so no caller can grow a row without bound.
pub const DETAILS_MAX_BYTES: usize = 4096;

/// `s` cut to [`FIELD_MAX_CHARS`] characters (marked with `…` when cut).
fn capped(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(FIELD_MAX_CHARS) {
        None => s.into(),
        Some((end, _)) => format!("{}…", &s[..end]).into(),
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn record(conn: &Connection, e: &Event) -> Result<i64, DbError> {
    let details = (!e.details.is_null()).then(|| {
        let text = e.details.to_string();
        if text.len() > DETAILS_MAX_BYTES {
            serde_json::json!({"truncated": true, "bytes": text.len()}).to_string()
        } else {
            text
        }
    });
    // Cached: article writes record one entry each, on the hot path.
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor_id, actor, action, target, outcome, ip, request_id, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
            now(),
            e.actor_id,
            capped(&e.actor),
            e.action,
            e.target.as_deref().map(capped),
            e.outcome.as_str(),
            e.ip.as_deref().map(capped),
            e.request_id.as_deref().map(capped),
            details
        ])?;
    Ok(conn.last_insert_rowid())
}

/// Whether this database has the audit table (an archive restored from before V4).
/// Who last deleted each of the articles `ids` (the actor of its newest `article.delete`
/// entry, whose target is `article:<id>`); articles with none are left out.
#[tracing::instrument(level = "debug", skip_all)]
pub fn deleted_by(
    conn: &Connection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT actor FROM audit_log WHERE action = 'article.delete' AND target = ?1
         ORDER BY id DESC LIMIT 1",
    )?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        let actor: Option<String> = stmt
            .query_row([format!("article:{id}")], |r| r.get(0))
            .optional()?;
        if let Some(a) = actor {
            out.insert(*id, a);
        }
    }
    Ok(out)
}

/// The newest entry of `action` with `outcome`: its time and details (the index on
/// `(action, id)` finds it at once).
#[tracing::instrument(level = "debug", skip_all)]
pub fn last_of(
    conn: &Connection,
    action: &str,
    outcome: Outcome,
) -> Result<Option<(String, Option<String>)>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT at, details FROM audit_log WHERE action = ?1 AND outcome = ?2
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(rusqlite::params![action, outcome.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Whether the account `email` signed in successfully from `ip` at or after `since`
/// (an RFC 3339 time): the addresses a lockout does not shut out.
#[tracing::instrument(level = "debug", skip_all)]
pub fn signed_in_from(
    conn: &Connection,
    email: &str,
    ip: &str,
    since: &str,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM audit_log WHERE action = 'auth.login' AND outcome = 'success'
             AND target = ?1 COLLATE NOCASE AND ip = ?2 AND at >= ?3 LIMIT 1",
        )?
        .exists(rusqlite::params![email, ip, since])?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn has_table(conn: &Connection) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'audit_log'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// A recorded event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<Value>,
}

/// Filters of a listing; every field narrows it. Newest first, keyset-paged by id.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Exact action, or a prefix ending in `.` (`auth.` for all auth events).
    pub action: Option<String>,
    /// Actor email/name (exact, case-insensitive).
    pub actor: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 bounds on `at` (inclusive since, exclusive until).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only ids below this (the previous page's last id).
    pub before_id: Option<i64>,
    /// Only ids above this (for following new events).
    pub after_id: Option<i64>,
    pub limit: u32,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn list(conn: &Connection, f: &Filter) -> Result<Vec<Entry>, DbError> {
    // `auth.` is a prefix; `auth` matches itself and everything under `auth.` (what an
    // admin typing a word expects); no LIKE, so `_` and `%` are plain characters.
    let (action_exact, action_prefix) = match &f.action {
        Some(a) if a.ends_with('.') => (None, Some(a.clone())),
        Some(a) => (Some(a.clone()), Some(format!("{a}."))),
        None => (None, None),
    };
    let mut stmt = conn.prepare(
        "SELECT id, at, actor_id, actor, action, target, outcome, ip, request_id, details
         FROM audit_log
         WHERE ((?1 IS NULL AND ?2 IS NULL) OR action = ?1
                OR substr(action, 1, length(?2)) = ?2)
           AND (?3 IS NULL OR actor = ?3 COLLATE NOCASE)
           AND (?4 IS NULL OR outcome = ?4)
           AND (?5 IS NULL OR at >= ?5)
           AND (?6 IS NULL OR at < ?6)
           AND (?7 IS NULL OR id < ?7)
           AND (?8 IS NULL OR id > ?8)
         ORDER BY id DESC LIMIT ?9",
    )?;
    let rows = stmt.query_map(
        params![
            action_exact,
            action_prefix,
            f.actor,
            f.outcome,
            f.since,
            f.until,
            f.before_id,
            f.after_id,
            f.limit
        ],
        |r| {
            let details: Option<String> = r.get(9)?;
            Ok(Entry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                outcome: r.get(6)?,
                ip: r.get(7)?,
                request_id: r.get(8)?,
                details: details.and_then(|d| serde_json::from_str(&d).ok()),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
