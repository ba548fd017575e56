//! Sessions: password hashing off the async threads, sign-in (a new session id and CSRF
//! token each time), sign-out and `me`. The cookie and header names live here.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::access::{audit, session_cookie, time_ago};
use super::caller::{Caller, Principal, Via};
use crate::auth::ops::{self};
use crate::auth::{self};
use crate::db::audit::Outcome;
use crate::db::users::{self, User};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "appliance_session";
/// Header carrying the CSRF token on state-changing cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Last-seen / last-used times are written at most this often per session or token.
pub(super) const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// Hash a password on a blocking thread, at most two at a time (19 MiB each).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn hash(state: &AppState, password: String) -> Result<String, ApiError> {
    let _permit = state.argon2_permit().await;
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)
}

pub(super) async fn verify(state: &AppState, password: String, phc: Option<String>) -> bool {
    let _permit = state.argon2_permit().await;
    tokio::task::spawn_blocking(move || {
        // Unknown user or no password yet: spend the same time on a dummy hash.
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (auth::dummy_hash().to_string(), false),
        };
        auth::verify_password(&password, &phc) && real
    })
    .await
    .unwrap_or(false)
}

/// A new session for `user`: stored hashed; the cookie and the CSRF token returned.
pub(super) async fn start_session(
    state: &AppState,
    user: &User,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<(HeaderValue, String, String), ApiError> {
    let secret = auth::random_secret();
    let csrf = auth::random_secret();
    let max_age = state.config().security.session_absolute();
    let expires = ops::from_now(max_age);
    let id_hash = auth::secret_hash(&secret);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let (uid, ip, csrf2, exp2) = (
        user.id,
        caller.ip.to_string(),
        csrf.clone(),
        expires.clone(),
    );
    let idle = state.config().security.session_idle();
    let cutoff = time_ago(idle);
    state
        .db()
        .write(move |c| {
            // Sessions past a timeout are dead already; drop them while here.
            users::purge_sessions(c, &crate::clock::now(), &cutoff)?;
            users::create_session(
                c,
                &users::NewSession {
                    id_hash: &id_hash,
                    user_id: uid,
                    csrf_token: &csrf2,
                    expires_at: &exp2,
                    ip: Some(&ip),
                    user_agent: user_agent.as_deref(),
                },
            )?;
            users::record_login(c, uid)
        })
        .await?;
    let cookie = cookie::Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(state.config().security.behind_tls_proxy)
        .max_age(max_age)
        .build();
    let value = HeaderValue::from_str(&cookie.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cookie header: {e}")))?;
    Ok((value, csrf, expires))
}

fn clear_cookie(state: &AppState) -> HeaderValue {
    let c = cookie::Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(state.config().security.behind_tls_proxy)
        .max_age(time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static(""))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// How long a successful sign-in makes its address trusted by its account's lockout.
const TRUSTED_FOR: time::Duration = time::Duration::days(30);

/// Whether this caller is the account's owner as far as a lockout can tell: it presents
/// a valid session or token of the account `email`, or signs in from an address the
/// account signed in from in the last 30 days. A locked-out account still takes such a
/// caller's attempts, counted against a budget of that account and address alone:
/// failures from elsewhere cannot lock the owner out.
async fn trusted(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    email: &str,
) -> Result<bool, ApiError> {
    // Sign-in is a public route, so its caller carries no principal: look at the
    // session cookie here (a stale or bad one simply does not count).
    let own_session = super::access::resolve(state, headers)
        .await
        .ok()
        .flatten()
        .is_some_and(|p| p.user.email.eq_ignore_ascii_case(email));
    if own_session {
        return Ok(true);
    }
    let (email, ip) = (email.to_string(), caller.ip.to_string());
    let since = crate::clock::format(time::OffsetDateTime::now_utc() - TRUSTED_FOR);
    Ok(state
        .db()
        .read(move |c| crate::db::audit::signed_in_from(c, &email, &ip, &since))
        .await?)
}

fn locked_out(wait: std::time::Duration) -> ApiError {
    ApiError::RateLimited {
        message: format!(
            "Too many failed sign-ins to this account. Try again in {} seconds, or from a device you have signed in from before.",
            wait.as_secs().max(1)
        ),
        retry_after: wait,
    }
}

/// `POST /api/auth/login`: a new session (cookie) for a correct email and password. Only
/// failures spend the sign-in budgets (per address, per account): successful sign-ins
/// never lock anyone out.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    super::json::Json(body): super::json::Json<LoginBody>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_string();
    // What the audit log and the log say of the account: never the raw input.
    let named = crate::auth::audit::account_target(&email);
    let limiters = state.limiters();
    // While the account is locked out, only its owner's callers get attempts.
    let owner = match limiters.account_locked(&email) {
        Some(wait) => {
            if !trusted(&state, &caller, &headers, &email).await? {
                return Err(locked_out(wait));
            }
            if let Some(wait) = limiters.trusted_blocked(&email, caller.ip) {
                return Err(locked_out(wait));
            }
            true
        }
        None => false,
    };
    let failed = |state: &AppState| {
        if owner {
            state.limiters().trusted_failed(&email, caller.ip);
            None
        } else {
            state.limiters().account_failed(&email)
        }
    };
    let lookup = email.clone();
    let found = state
        .db()
        .read(move |c| users::find_login(c, &lookup))
        .await?;
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    let ok = verify(&state, body.password, phc).await;
    let fail = |reason: &str| {
        caller
            .event("auth.login", Outcome::Failure)
            .target(user.as_ref().map_or(named.as_str(), |u| u.email.as_str()))
            .details(json!({"reason": reason}))
    };
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        // Only someone who knows the password learns that the account is disabled.
        Some(_) if ok => {
            audit(&state, fail("disabled")).await;
            return Err(ApiError::Forbidden("this account is disabled".into()));
        }
        ref known => {
            let reason = if known.is_some() {
                "wrong password"
            } else {
                "unknown email"
            };
            audit(&state, fail(reason)).await;
            if let Some((wait, true)) = failed(&state) {
                tracing::warn!(ip = %caller.ip, account = %named, retry_after_secs = wait.as_secs(), "sign-in lockout: too many failed attempts for this account");
                audit(
                    &state,
                    caller
                        .event("auth.lockout", Outcome::Denied)
                        .target(&named)
                        .details(json!({"retry_after_secs": wait.as_secs()})),
                )
                .await;
            }
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
    };
    // A new session id on every sign-in (no fixation); the one presented, if any, ends.
    if let Some(old) = session_cookie(&headers) {
        let h = auth::secret_hash(&old);
        state
            .db()
            .write(move |c| users::delete_session(c, &h))
            .await?;
    }
    let (cookie, csrf, expires) = start_session(&state, &user, &caller, &headers).await?;
    let mut e = caller
        .event("auth.login", Outcome::Success)
        .target(&user.email);
    e.actor_id = Some(user.id);
    e.actor = user.email.clone();
    audit(&state, e).await;
    tracing::info!(user_id = user.id, ip = %caller.ip, "signed in");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"user": user, "role": user.role, "csrf_token": csrf, "expires_at": expires})),
    )
        .into_response())
}

/// `POST /api/auth/logout`: end the current session (or do nothing for a token).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if let Some(Principal {
        via: Via::Session { id_hash, .. },
        ..
    }) = &caller.principal
    {
        let h = id_hash.clone();
        state
            .db()
            .write(move |c| users::delete_session(c, &h))
            .await?;
        audit(&state, caller.event("auth.logout", Outcome::Success)).await;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(&state))],
    )
        .into_response())
}

/// `GET /api/auth/me`: the signed-in user, its effective role and (for a session) the
/// CSRF token to send with state-changing requests.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn me(caller: Caller) -> Result<Json<Value>, ApiError> {
    let p = caller.principal()?;
    let (via, csrf, token) = match &p.via {
        Via::Session { csrf_token, .. } => ("session", Some(csrf_token.clone()), None),
        Via::Token { prefix, .. } => ("token", None, Some(prefix.clone())),
    };
    Ok(Json(json!({
        "user": p.user,
        "role": p.role,
        "via": via,
        "csrf_token": csrf,
        "token_prefix": token,
    })))
}
