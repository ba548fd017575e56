//! `/api/admin/users` and `/api/admin/audit` (admin only, enforced by the route table):
//! list, create and change users, issue password-reset links, read the audit log.
//! The rules (last admin, audit entries) are in `crate::auth::ops`.

use axum::Json;
use axum::extract::{Path, State};

use super::json::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::account::clean_name;
use super::caller::Caller;
use super::sessions::hash;
use crate::auth::ops::{self, NewUser};
use crate::auth::{self, Role};
use crate::db::audit;
use crate::db::users::{self, Change};
use crate::state::AppState;
use crate::validate::FieldError;

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = state.db().read(users::list).await?;
    Ok(Json(json!({"users": users})))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .db()
        .read(move |c| users::get(c, id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    Ok(Json(json!({"user": user})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    role: Role,
    #[serde(default)]
    display_name: String,
    /// Set a password now; without one the answer carries a set-password link.
    password: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    super::json::Json(body): super::json::Json<NewUserBody>,
) -> Result<Response, ApiError> {
    let email =
        auth::parse_email("email", &body.email).map_err(|f| ApiError::Validation(vec![f]))?;
    let display_name = clean_name(&body.display_name)?;
    let password_hash = match body.password {
        Some(p) => {
            auth::check_password("password", &p, Some(&email))
                .map_err(|f| ApiError::Validation(vec![f]))?;
            Some(hash(&state, p).await?)
        }
        None => None,
    };
    let needs_link = password_hash.is_none();
    let actor = caller.actor();
    let ttl = state.config().security.reset_link_ttl();
    let (user, link) = state
        .db()
        .write(move |c| {
            let u = ops::create_user(
                c,
                &NewUser {
                    email: email.clone(),
                    display_name: display_name.clone(),
                    role: body.role,
                    password_hash: password_hash.clone(),
                },
                &actor,
            )?;
            let link = if needs_link {
                Some(ops::issue_reset(c, &u, ttl, &actor)?)
            } else {
                None
            };
            Ok::<_, ops::OpError>((u, link))
        })
        .await?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let link = link.map(|(secret, expires)| {
        json!({"url": ops::reset_link(&state.config().public_base_url(host), &secret), "expires_at": expires})
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": user, "set_password_link": link})),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    role: Option<Role>,
    disabled: Option<bool>,
    display_name: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    super::json::Json(body): super::json::Json<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    if body.role.is_none() && body.disabled.is_none() && body.display_name.is_none() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "",
            "nothing to change: send role, disabled or display_name",
        )]));
    }
    let change = Change {
        role: body.role,
        disabled: body.disabled,
        display_name: body.display_name.as_deref().map(clean_name).transpose()?,
        password_hash: None,
    };
    let actor = caller.actor();
    let user = state
        .db()
        .write(move |c| ops::change_user(c, id, &change, &actor))
        .await?;
    Ok(Json(json!({"user": user})))
}

/// `POST /api/admin/users/{id}/reset-link`: a one-time link to set a new password.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset_link(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let actor = caller.actor();
    let ttl = state.config().security.reset_link_ttl();
    let (secret, expires) = state
        .db()
        .write(move |c| {
            let u = users::get(c, id)?
                .ok_or_else(|| ops::OpError::NotFound(format!("no user {id}")))?;
            ops::issue_reset(c, &u, ttl, &actor)
        })
        .await?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    Ok(Json(
        json!({"url": ops::reset_link(&state.config().public_base_url(host), &secret), "expires_at": expires}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/admin/audit?action=&actor=&outcome=&since=&until=&before=&limit=`: newest
/// first; `next_before` pages on.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn audit_log(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut errs = Vec::new();
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        errs.push(FieldError::new("limit", "must be between 1 and 500"));
    }
    if let Some(o) = &q.outcome
        && !["success", "failure", "denied"].contains(&o.as_str())
    {
        errs.push(FieldError::new(
            "outcome",
            "must be success, failure or denied",
        ));
    }
    let since = q
        .since
        .as_deref()
        .and_then(|v| super::time_param("since", v, &mut errs));
    let until = q
        .until
        .as_deref()
        .and_then(|v| super::time_param("until", v, &mut errs));
    if !errs.is_empty() {
        return Err(ApiError::BadParameter {
            message: "invalid audit query".into(),
            fields: errs,
        });
    }
    let filter = audit::Filter {
        action: q.action,
        actor: q.actor,
        outcome: q.outcome,
        since,
        until,
        before_id: q.before,
        after_id: None,
        limit,
    };
    let entries = state.db().read(move |c| audit::list(c, &filter)).await?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({"entries": entries, "next_before": next})))
}
