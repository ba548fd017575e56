//! One's own account: first-admin setup, password change, password reset by link.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::access::audit;
use super::caller::{Caller, Via};
use super::sessions::{hash, start_session, verify};
use crate::auth::ops::{self, NewUser};
use crate::auth::{self, Role};
use crate::db::audit::{self, Outcome};
use crate::db::users::{self, Change};
use crate::state::AppState;

/// `GET /api/auth/setup`: whether the first admin still has to be created.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn setup_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = state.db().read(users::count).await?;
    Ok(Json(
        json!({"required": users == 0, "token_active": state.setup_token().is_active()}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    token: String,
    email: String,
    password: String,
    #[serde(default)]
    display_name: String,
}

/// `POST /api/auth/setup`: create the first admin with the one-time setup token that
/// `serve` logged, and sign it in.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn setup(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    super::json::Json(body): super::json::Json<SetupBody>,
) -> Result<Response, ApiError> {
    if !state.setup_token().matches(body.token.trim()) {
        audit(
            &state,
            caller
                .event("auth.setup", Outcome::Failure)
                .details(json!({"reason": "wrong or no setup token"})),
        )
        .await;
        return Err(if state.setup_token().is_active() {
            ApiError::Unauthorized("wrong setup token (see the server log)".into())
        } else {
            ApiError::Conflict {
                field: None,
                message: "setup is not available: a user exists or the token was used".into(),
            }
        });
    }
    // Every problem at once, not one per round trip.
    let email = auth::parse_email("email", &body.email);
    let problems: Vec<_> = [
        email.as_ref().err().cloned(),
        auth::check_password("password", &body.password, email.as_deref().ok()).err(),
        match clean_name(&body.display_name) {
            Err(ApiError::Validation(f)) => f.into_iter().next(),
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    .collect();
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let email = email.map_err(|f| ApiError::Validation(vec![f]))?;
    let display_name = clean_name(&body.display_name)?;
    let phc = hash(&state, body.password).await?;
    let actor = caller.actor();
    let user = state
        .db()
        .write(move |c| {
            if users::count(c)? > 0 {
                return Err(ops::OpError::Conflict {
                    field: "email".into(),
                    message: "setup is done: a user exists".into(),
                });
            }
            let u = ops::create_user(
                c,
                &NewUser {
                    email: email.clone(),
                    display_name: display_name.clone(),
                    role: Role::Admin,
                    password_hash: Some(phc.clone()),
                },
                &actor,
            )?;
            audit::record(
                c,
                &actor.event("auth.setup", Outcome::Success).target(&u.email),
            )?;
            Ok(u)
        })
        .await
        .map_err(ApiError::from)?;
    state.setup_token().consume();
    tracing::info!(
        user_id = user.id,
        "first admin created through the setup token"
    );
    let (cookie, csrf, expires) = start_session(&state, &user, &caller, &headers).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(json!({"user": user, "role": user.role, "csrf_token": csrf, "expires_at": expires})),
    )
        .into_response())
}

pub(super) fn clean_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(vec![
            crate::articles::FieldError::new(
                "display_name",
                "must be at most 100 characters, no control characters",
            ),
        ]));
    }
    Ok(name.to_string())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /api/auth/password`: change one's own password (the current one is checked).
/// Every session of the user ends; a cookie caller gets a fresh session.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    super::json::Json(body): super::json::Json<PasswordBody>,
) -> Result<Response, ApiError> {
    let p = caller.principal()?.clone();
    let email = p.user.email.clone();
    let found = state
        .db()
        .read(move |c| users::find_login(c, &email))
        .await?;
    let phc = found.and_then(|(_, h)| h);
    if !verify(&state, body.current_password, phc).await {
        audit(
            &state,
            caller
                .event("user.password_change", Outcome::Failure)
                .target(&p.user.email),
        )
        .await;
        return Err(ApiError::Validation(vec![
            crate::articles::FieldError::new("current_password", "is wrong"),
        ]));
    }
    auth::check_password("new_password", &body.new_password, Some(&p.user.email))
        .map_err(|f| ApiError::Validation(vec![f]))?;
    let phc = hash(&state, body.new_password).await?;
    let actor = caller.actor();
    let id = p.user.id;
    let user = state
        .db()
        .write(move |c| {
            let change = Change {
                password_hash: Some(phc.clone()),
                ..Change::default()
            };
            ops::change_user(c, id, &change, &actor)
        })
        .await
        .map_err(ApiError::from)?;
    if matches!(p.via, Via::Session { .. }) {
        let (cookie, csrf, expires) = start_session(&state, &user, &caller, &headers).await?;
        return Ok((
            [(header::SET_COOKIE, cookie)],
            Json(json!({"user": user, "csrf_token": csrf, "expires_at": expires})),
        )
            .into_response());
    }
    Ok(Json(json!({"user": user})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    token: String,
    password: String,
}

/// `POST /api/auth/reset-password`: set a password with a one-time link's token.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Json(body): super::json::Json<ResetBody>,
) -> Result<Json<Value>, ApiError> {
    let token_hash = auth::secret_hash(body.token.trim());
    let now = crate::clock::now();
    // Check the link first (read-only), so a weak password does not spend it.
    let (h, n) = (token_hash.clone(), now.clone());
    let user_id = state
        .db()
        .read(move |c| users::reset_owner(c, &h, &n))
        .await?;
    let Some(user_id) = user_id else {
        audit(
            &state,
            caller
                .event("user.password_reset", Outcome::Failure)
                .details(json!({"reason": "invalid link"})),
        )
        .await;
        return Err(ApiError::Unauthorized(
            "the reset link is invalid, used or expired; ask an admin for a new one".into(),
        ));
    };
    let user = state.db().read(move |c| users::get(c, user_id)).await?;
    let email = user.map(|u| u.email).unwrap_or_default();
    auth::check_password("password", &body.password, Some(&email))
        .map_err(|f| ApiError::Validation(vec![f]))?;
    let phc = hash(&state, body.password).await?;
    let mut actor = caller.actor();
    actor.name = email;
    actor.id = Some(user_id);
    let user = state
        .db()
        .write(move |c| {
            if users::take_reset(c, &token_hash, &now)? != Some(user_id) {
                return Err(ops::OpError::NotFound(
                    "the reset link was used meanwhile".into(),
                ));
            }
            let change = Change {
                password_hash: Some(phc.clone()),
                ..Change::default()
            };
            ops::change_user_as(c, user_id, &change, &actor, "user.password_reset")
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({"user": user})))
}
