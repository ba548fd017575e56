//! API tokens: list, create (shown once), revoke: one's own, or anybody's for an admin.

use axum::Json;
use axum::extract::{Path, State};

use super::json::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::caller::Caller;
use crate::auth::Role;
use crate::auth::ops::{self, TokenRequest};
use crate::db::users::{self};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenListQuery {
    user_id: Option<i64>,
    all: Option<bool>,
}

/// `GET /api/auth/tokens`: own tokens; an admin may pass `user_id=` or `all=true`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TokenListQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = caller.principal()?;
    let admin = p.role == Role::Admin;
    let scope = match (q.user_id, q.all.unwrap_or(false)) {
        (_, true) if admin => None,
        (Some(id), _) if admin => Some(id),
        (Some(id), _) if id != p.user.id => {
            return Err(ApiError::Forbidden(
                "listing another user's tokens needs the admin role".into(),
            ));
        }
        (_, true) => return Err(ApiError::Forbidden("all=true needs the admin role".into())),
        _ => Some(p.user.id),
    };
    let tokens = state
        .db()
        .read(move |c| users::list_tokens(c, scope))
        .await?;
    Ok(Json(json!({"tokens": tokens})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    name: String,
    role: Option<Role>,
    /// Days until it expires; none: never.
    expires_in_days: Option<u32>,
    /// Admin only: create the token for another user.
    user_id: Option<i64>,
}

/// `POST /api/auth/tokens`: a new API token, shown once in the answer.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Json(body): super::json::Json<NewTokenBody>,
) -> Result<Response, ApiError> {
    let p = caller.principal()?.clone();
    let owner_id = body.user_id.unwrap_or(p.user.id);
    if owner_id != p.user.id && p.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "creating tokens for another user needs the admin role".into(),
        ));
    }
    if body.expires_in_days.is_some_and(|d| d == 0 || d > 3650) {
        return Err(ApiError::Validation(vec![
            crate::articles::FieldError::new("expires_in_days", "must be between 1 and 3650"),
        ]));
    }
    let expires_at = body
        .expires_in_days
        .map(|d| ops::from_now(time::Duration::days(i64::from(d))));
    let actor = caller.actor();
    let (secret, token) = state
        .db()
        .write(move |c| {
            let owner = users::get(c, owner_id)?
                .ok_or_else(|| ops::OpError::NotFound(format!("no user {owner_id}")))?;
            let role = body
                .role
                .unwrap_or(owner.role.min(actor.role.unwrap_or(Role::Viewer)));
            ops::issue_token(
                c,
                &TokenRequest {
                    owner,
                    name: body.name.clone(),
                    role,
                    expires_at: expires_at.clone(),
                },
                &actor,
            )
        })
        .await
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": secret, "info": token, "note": "shown once; store it now"})),
    )
        .into_response())
}

/// `DELETE /api/auth/tokens/{id}`: revoke one's own token (an admin: any).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    caller.principal()?;
    let actor = caller.actor();
    let token = state
        .db()
        .write(move |c| ops::revoke_token(c, id, &actor))
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({"token": token})))
}
