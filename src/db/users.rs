//! Queries of the identity tables (migration V4): users, sessions, API tokens and
//! password-reset links. Functions take a plain connection so the server (through
//! [`super::Db::write`] / [`super::Db::read`]) and the CLI share them. Nothing here
//! returns a password hash except [`find_login`], which the login check needs.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::DbError;
use crate::clock::now;
use crate::domain::Role;

/// A user as shown to admins and to itself (never the password hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    /// Whether a password is set (false until the set-password link is used).
    pub password_set: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
}

const USER_COLUMNS: &str = "id, email, display_name, role, disabled, password_hash IS NOT NULL, created_at, updated_at, last_login_at";

fn role_of(s: String) -> Role {
    // The CHECK constraint allows only the three names; anything else is least privilege.
    Role::parse(&s).unwrap_or(Role::Viewer)
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    user_at(r, 0)
}

/// The user columns ([`USER_COLUMNS`]) starting at column `base` of a row.
fn user_at(r: &Row<'_>, base: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(base)?,
        email: r.get(base + 1)?,
        display_name: r.get(base + 2)?,
        role: role_of(r.get(base + 3)?),
        disabled: r.get(base + 4)?,
        password_set: r.get(base + 5)?,
        created_at: r.get(base + 6)?,
        updated_at: r.get(base + 7)?,
        last_login_at: r.get(base + 8)?,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn count(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Enabled admins other than `except` (to refuse removing the last one).
#[tracing::instrument(level = "debug", skip_all)]
pub fn other_enabled_admins(conn: &Connection, except: i64) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?1",
        [except],
        |r| r.get(0),
    )?)
}

/// Create a user; a taken email (any case) is [`DbError::Unique`] on `users.email`.
#[tracing::instrument(level = "debug", skip_all)]
pub fn create(
    conn: &Connection,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: Option<&str>,
) -> Result<User, DbError> {
    let at = now();
    conn.execute(
        "INSERT INTO users (email, display_name, role, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![email, display_name, role.as_str(), password_hash, at],
    )?;
    get(conn, conn.last_insert_rowid())?.ok_or_else(|| DbError::Other("user vanished".into()))
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn get(conn: &Connection, id: i64) -> Result<Option<User>, DbError> {
    // Cached: every token-authenticated request reads its user.
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], user_from_row)
        .optional()?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn by_email(conn: &Connection, email: &str) -> Result<Option<User>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
            [email.trim()],
            user_from_row,
        )
        .optional()?)
}

/// The user and its password hash, for checking a login.
#[tracing::instrument(level = "debug", skip_all)]
pub fn find_login(
    conn: &Connection,
    email: &str,
) -> Result<Option<(User, Option<String>)>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?1"),
            [email.trim()],
            |r| Ok((user_from_row(r)?, r.get(9)?)),
        )
        .optional()?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn list(conn: &Connection) -> Result<Vec<User>, DbError> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A change to a user; each applied change that touches privileges revokes sessions.
#[derive(Debug, Default, Clone)]
pub struct Change {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
}

/// Apply `change` to user `id`. A role change, a disable and a new password end every
/// session of the user (API tokens stop working while disabled and are capped by the
/// current role, see [`token_lookup`]). Returns the user after the change.
#[tracing::instrument(level = "debug", skip_all)]
pub fn update(conn: &Connection, id: i64, change: &Change) -> Result<Option<User>, DbError> {
    let Some(before) = get(conn, id)? else {
        return Ok(None);
    };
    let at = now();
    if let Some(role) = change.role {
        conn.execute(
            "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, role.as_str(), at],
        )?;
    }
    if let Some(disabled) = change.disabled {
        conn.execute(
            "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, disabled, at],
        )?;
    }
    if let Some(name) = &change.display_name {
        conn.execute(
            "UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, at],
        )?;
    }
    if let Some(hash) = &change.password_hash {
        conn.execute(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, hash, at],
        )?;
        // Outstanding reset links are spent by a new password.
        conn.execute(
            "UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
            params![id, at],
        )?;
    }
    let privileges_changed = change.role.is_some_and(|r| r != before.role)
        || change.disabled == Some(true)
        || change.password_hash.is_some();
    if privileges_changed {
        delete_user_sessions(conn, id)?;
    }
    get(conn, id)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn record_login(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(())
}

// ---- sessions -------------------------------------------------------------------------

/// A live session and its user, as found by the cookie's hash.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    pub csrf_token: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub user: User,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub expires_at: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn create_session(conn: &Connection, s: &NewSession<'_>) -> Result<(), DbError> {
    let at = now();
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
        params![s.id_hash, s.user_id, s.csrf_token, at, s.expires_at, s.ip, s.user_agent],
    )?;
    Ok(())
}

/// The session with this id hash if it exists, is within both timeouts (`idle_cutoff`
/// is now minus the idle timeout) and its user is enabled.
#[tracing::instrument(level = "debug", skip_all)]
pub fn session_lookup(
    conn: &Connection,
    id_hash: &str,
    now: &str,
    idle_cutoff: &str,
) -> Result<Option<SessionRow>, DbError> {
    // A cached statement, its text built once: this runs for every request with a
    // session cookie.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT s.id_hash, s.csrf_token, s.last_seen_at, s.expires_at, {}
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND s.last_seen_at > ?3 AND u.disabled = 0",
            super::prefixed("u", USER_COLUMNS)
        )
    });
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row(params![id_hash, now, idle_cutoff], |r| {
            Ok(SessionRow {
                id_hash: r.get(0)?,
                csrf_token: r.get(1)?,
                last_seen_at: r.get(2)?,
                expires_at: r.get(3)?,
                user: user_at(r, 4)?,
            })
        })
        .optional()?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn touch_session(conn: &Connection, id_hash: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
        params![id_hash, now()],
    )?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn delete_session(conn: &Connection, id_hash: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn delete_user_sessions(conn: &Connection, user_id: i64) -> Result<usize, DbError> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
}

/// Remove sessions past either timeout; returns how many.
#[tracing::instrument(level = "debug", skip_all)]
pub fn purge_sessions(conn: &Connection, now: &str, idle_cutoff: &str) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![now, idle_cutoff],
    )?)
}

// ---- API tokens -----------------------------------------------------------------------

/// An API token as listed (never the secret or its hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub user_email: String,
    pub name: String,
    pub role: Role,
    /// The public part: tokens look like `apl_<prefix>_…`.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.email, t.name, t.role, t.prefix, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<Token> {
    token_at(r, 0)
}

/// The token columns ([`TOKEN_COLUMNS`]) starting at column `base` of a row.
fn token_at(r: &Row<'_>, base: usize) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(base)?,
        user_id: r.get(base + 1)?,
        user_email: r.get(base + 2)?,
        name: r.get(base + 3)?,
        role: role_of(r.get(base + 4)?),
        prefix: r.get(base + 5)?,
        created_at: r.get(base + 6)?,
        expires_at: r.get(base + 7)?,
        last_used_at: r.get(base + 8)?,
        revoked_at: r.get(base + 9)?,
    })
}

pub struct NewTokenRow<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub role: Role,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    pub created_by: Option<i64>,
    pub expires_at: Option<&'a str>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn create_token(conn: &Connection, t: &NewTokenRow<'_>) -> Result<Token, DbError> {
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, role, prefix, secret_hash, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![t.user_id, t.name, t.role.as_str(), t.prefix, t.secret_hash, t.created_by, now(), t.expires_at],
    )?;
    get_token(conn, conn.last_insert_rowid())?
        .ok_or_else(|| DbError::Other("token vanished".into()))
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn get_token(conn: &Connection, id: i64) -> Result<Option<Token>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1"),
            [id],
            token_from_row,
        )
        .optional()?)
}

/// Tokens of one user, or of everyone (`None`), newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub fn list_tokens(conn: &Connection, user_id: Option<i64>) -> Result<Vec<Token>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.id DESC"
    ))?;
    let rows = stmt.query_map([user_id], token_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A presented token's row by its public prefix: the stored hash (for a constant-time
/// comparison by the caller), the token and its user. Only tokens that are not
/// revoked, not expired and whose user is enabled are returned. The effective role is
/// the lower of the token's and the user's current role.
#[tracing::instrument(level = "debug", skip_all)]
pub fn token_lookup(
    conn: &Connection,
    prefix: &str,
    now: &str,
) -> Result<Option<(String, Token, User)>, DbError> {
    // One cached statement for the token and its user, its text built once: this runs
    // for every token-authenticated request.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT t.secret_hash, {TOKEN_COLUMNS}, {} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.prefix = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)
               AND u.disabled = 0",
            super::prefixed("u", USER_COLUMNS)
        )
    });
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row(params![prefix, now], |r| {
            Ok((r.get(0)?, token_at(r, 1)?, user_at(r, 11)?))
        })
        .optional()?)
}

#[tracing::instrument(level = "debug", skip_all)]
pub fn touch_token(conn: &Connection, id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(())
}

/// Revoke a token; false when it does not exist or was revoked already.
#[tracing::instrument(level = "debug", skip_all)]
pub fn revoke_token(conn: &Connection, id: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now()],
    )? == 1)
}

// ---- password-reset links ---------------------------------------------------------------

#[tracing::instrument(level = "debug", skip_all)]
pub fn create_reset(
    conn: &Connection,
    user_id: i64,
    token_hash: &str,
    expires_at: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, user_id, now(), expires_at],
    )?;
    Ok(())
}

/// The user a reset link belongs to, when it exists, is unused and unexpired and the
/// user is enabled. Changes nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub fn reset_owner(conn: &Connection, token_hash: &str, now: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
             WHERE r.token_hash = ?1 AND r.used_at IS NULL AND r.expires_at > ?2 AND u.disabled = 0",
            params![token_hash, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Spend a reset link: its owner as [`reset_owner`] finds it; it is marked used either way.
#[tracing::instrument(level = "debug", skip_all)]
pub fn take_reset(conn: &Connection, token_hash: &str, now: &str) -> Result<Option<i64>, DbError> {
    let user = reset_owner(conn, token_hash, now)?;
    conn.execute(
        "UPDATE password_resets SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![token_hash, now],
    )?;
    Ok(user)
}
