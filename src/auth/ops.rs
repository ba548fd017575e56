//! User operations shared by the CLI and the HTTP API, each one transaction that also
//! writes its audit entry: create a user, change role / disabled / name / password,
//! issue a password-reset link, issue and revoke API tokens. Validation and the
//! "never leave the appliance without an enabled admin" rule live here, once.

use rusqlite::Connection;
use serde_json::json;

use super::{Role, new_api_token, random_secret, secret_hash};
use crate::clock;
use crate::db::DbError;
use crate::db::audit::{self, Outcome};
use crate::db::users::{self, Change, NewTokenRow, Token, User};
use crate::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{}", .0.iter().map(|f| format!("`{}` {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// The change would leave no enabled admin.
    #[error("{0}")]
    LastAdmin(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub use super::audit::Actor;

/// RFC 3339 time `d` from now.
pub fn from_now(d: time::Duration) -> String {
    clock::format(time::OffsetDateTime::now_utc() + d)
}

/// A new user. `password_hash` None leaves the account without a password until a
/// set-password link is used.
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: Option<String>,
}

pub fn create_user(conn: &Connection, new: &NewUser, actor: &Actor) -> Result<User, OpError> {
    let user = users::create(
        conn,
        &new.email,
        &new.display_name,
        new.role,
        new.password_hash.as_deref(),
    )
    .map_err(|e| match e {
        DbError::Unique { .. } => OpError::Conflict {
            field: "email".into(),
            message: format!("a user with email `{}` exists", new.email),
        },
        other => other.into(),
    })?;
    audit::record(
        conn,
        &actor
            .event("user.create", Outcome::Success)
            .target(&user.email)
            .details(json!({"role": user.role, "password_set": user.password_set})),
    )?;
    Ok(user)
}

/// Apply a change to a user, refusing one that would leave no enabled admin. Each
/// change is audited once (a new password as `user.password_set`).
pub fn change_user(
    conn: &Connection,
    id: i64,
    change: &Change,
    actor: &Actor,
) -> Result<User, OpError> {
    change_user_as(conn, id, change, actor, "user.password_set")
}

/// [`change_user`], auditing a new password under `password_action` (a reset link's
/// use is `user.password_reset`): one entry per password, never two.
pub fn change_user_as(
    conn: &Connection,
    id: i64,
    change: &Change,
    actor: &Actor,
    password_action: &'static str,
) -> Result<User, OpError> {
    let before = users::get(conn, id)?.ok_or_else(|| OpError::NotFound(format!("no user {id}")))?;
    let loses_admin = before.role == Role::Admin
        && !before.disabled
        && (change.role.is_some_and(|r| r != Role::Admin) || change.disabled == Some(true));
    if loses_admin && users::other_enabled_admins(conn, id)? == 0 {
        return Err(OpError::LastAdmin(format!(
            "{} is the only enabled admin; make another admin first",
            before.email
        )));
    }
    let after = users::update(conn, id, change)?
        .ok_or_else(|| OpError::NotFound(format!("no user {id}")))?;
    let mut events = Vec::new();
    if after.role != before.role {
        events.push(
            actor
                .event("user.role_change", Outcome::Success)
                .details(json!({"from": before.role, "to": after.role})),
        );
    }
    if after.disabled != before.disabled {
        let action = if after.disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        events.push(actor.event(action, Outcome::Success));
    }
    if after.display_name != before.display_name {
        events.push(actor.event("user.rename", Outcome::Success));
    }
    if change.password_hash.is_some() {
        events.push(actor.event(password_action, Outcome::Success));
    }
    for e in events {
        audit::record(conn, &e.target(&after.email))?;
    }
    Ok(after)
}

/// A one-time password-reset (or first password) link for a user: (secret, expiry).
pub fn issue_reset(
    conn: &Connection,
    user: &User,
    ttl: time::Duration,
    actor: &Actor,
) -> Result<(String, String), OpError> {
    let secret = random_secret();
    let expires = from_now(ttl);
    users::create_reset(conn, user.id, &secret_hash(&secret), &expires)?;
    audit::record(
        conn,
        &actor
            .event("user.reset_link", Outcome::Success)
            .target(&user.email)
            .details(json!({"expires_at": expires})),
    )?;
    Ok((secret, expires))
}

/// The link people open to set a password: the secret is in the fragment, which
/// browsers never send to a server or put in a Referer.
pub fn reset_link(base: &str, secret: &str) -> String {
    format!(
        "{}/admin/reset-password#token={secret}",
        base.trim_end_matches('/')
    )
}

/// What a new API token asks for.
pub struct TokenRequest {
    pub owner: User,
    pub name: String,
    pub role: Role,
    pub expires_at: Option<String>,
}

/// Create an API token; returns the token (shown once) and its listing.
pub fn issue_token(
    conn: &Connection,
    req: &TokenRequest,
    actor: &Actor,
) -> Result<(String, Token), OpError> {
    let mut errs = Vec::new();
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        errs.push(FieldError::new(
            "name",
            "must be 1 to 100 characters, no control characters",
        ));
    }
    if req.role > req.owner.role {
        errs.push(FieldError::new(
            "role",
            format!("cannot exceed the owner's role ({})", req.owner.role),
        ));
    }
    if let Some(limit) = actor.role
        && req.role > limit
    {
        errs.push(FieldError::new(
            "role",
            format!("cannot exceed your role ({limit})"),
        ));
    }
    if !errs.is_empty() {
        return Err(OpError::Invalid(errs));
    }
    let new = new_api_token();
    let token = users::create_token(
        conn,
        &NewTokenRow {
            user_id: req.owner.id,
            name,
            role: req.role,
            prefix: &new.prefix,
            secret_hash: &secret_hash(&new.token),
            created_by: actor.id,
            expires_at: req.expires_at.as_deref(),
        },
    )?;
    audit::record(
        conn,
        &actor
            .event("token.create", Outcome::Success)
            .target(format!("{} ({})", token.prefix, req.owner.email))
            .details(
                json!({"name": token.name, "role": token.role, "expires_at": token.expires_at}),
            ),
    )?;
    Ok((new.token, token))
}

/// Revoke a token. Users revoke their own; admins any (`actor.role`/`id` decide).
pub fn revoke_token(conn: &Connection, id: i64, actor: &Actor) -> Result<Token, OpError> {
    let token = users::get_token(conn, id)?
        .filter(|t| actor.role == Some(Role::Admin) || actor.id == Some(t.user_id))
        .ok_or_else(|| OpError::NotFound(format!("no token {id}")))?;
    if !users::revoke_token(conn, id)? {
        return Err(OpError::Conflict {
            field: "id".into(),
            message: format!("token {id} is revoked already"),
        });
    }
    audit::record(
        conn,
        &actor
            .event("token.revoke", Outcome::Success)
            .target(format!("{} ({})", token.prefix, token.user_email)),
    )?;
    users::get_token(conn, id)?.ok_or_else(|| OpError::NotFound(format!("no token {id}")))
}
