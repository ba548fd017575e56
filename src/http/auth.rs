//! Who is calling and whether they may: the per-route [`authorize`] middleware (rate
//! limit tier, credentials from an API token or the session cookie, same-origin and
//! CSRF checks, the route's [`Access`]), the [`Caller`] handlers receive, and the
//! `/api/auth/…` handlers (sign-in and out, first-admin setup, own account, password
//! reset, API tokens). Rules about users themselves are in `crate::auth`.

use std::net::IpAddr;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiError;
use super::limits::{Tier, client_ip};
use crate::auth::ops::{self, Actor, NewUser, TokenRequest};
use crate::auth::{self, Role};
use crate::clock;
use crate::db::audit::{self, Event, Outcome};
use crate::db::users::{self, Change, User};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "appliance_session";
/// Header carrying the CSRF token on state-changing cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Last-seen / last-used times are written at most this often per session or token.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone (health, sign-in, setup, reset).
    Public,
    /// Anyone when `security.public_read`, else any signed-in user.
    PublicRead,
    /// Any signed-in user (viewer and up).
    Viewer,
    Editor,
    Admin,
}

/// One route of the API: method, path pattern, access rule and rate-limit tier.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    #[serde(serialize_with = "ser_method")]
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub tier: Tier,
}

fn ser_method<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// How a principal proved who it is.
#[derive(Debug, Clone)]
pub enum Via {
    Session { id_hash: String, csrf_token: String },
    Token { id: i64, prefix: String },
}

/// A signed-in user with the role in effect for this request (for a token, the lower
/// of the token's role and the user's current role).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub role: Role,
    pub via: Via,
}

/// The caller of a request, as resolved by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Option<Principal>,
    pub ip: IpAddr,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn role(&self) -> Option<Role> {
        self.principal.as_ref().map(|p| p.role)
    }
    /// Drafts and deleted articles are visible only to those who may edit them.
    pub fn can_see_drafts(&self) -> bool {
        self.role().is_some_and(|r| r >= Role::Editor)
    }
    /// The audit actor of this request.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.principal.as_ref().map(|p| p.user.id),
            name: self
                .principal
                .as_ref()
                .map_or_else(|| "anonymous".into(), |p| p.user.email.clone()),
            role: self.role(),
            ip: Some(self.ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }
    pub fn event(&self, action: &'static str, outcome: Outcome) -> Event {
        self.actor().event(action, outcome)
    }
    fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("sign in or send an API token".into()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Every routed request passed `authorize`, which put the caller there.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("route without the authorize layer")))
    }
}

/// Record an audit event in its own transaction (see `auth::audit::write`).
pub async fn audit(state: &AppState, event: Event) {
    crate::auth::audit::write(&state.ledger(), event).await;
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<Result<String, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let s = v.to_str().map_err(|_| ()).ok();
    Some(
        s.and_then(|s| {
            s.strip_prefix("Bearer ")
                .or_else(|| s.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .ok_or(()),
    )
}

/// A browser request from another site: `Origin` that is not this host, or
/// `Sec-Fetch-Site: cross-site`. Non-browser clients send neither and pass.
fn cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let public = &state.config().security.public_url;
    let public_host = public
        .split_once("://")
        .map_or("", |(_, h)| h)
        .trim_end_matches('/');
    !(origin_host.eq_ignore_ascii_case(host)
        || (!public_host.is_empty() && origin_host.eq_ignore_ascii_case(public_host)))
}

fn time_ago(d: time::Duration) -> String {
    clock::format(time::OffsetDateTime::now_utc() - d)
}

/// Record that API token `id` was used (in the background; at most once a
/// [`TOUCH_EVERY`] per token).
fn touch_token(state: &AppState, id: i64) {
    let db = state.db().clone();
    tokio::spawn(async move {
        let _ = db.write(move |c| users::touch_token(c, id)).await;
    });
}

/// Resolve the credentials of a request. `Err` only for a presented API token that is
/// not valid (a client should learn at once); a stale cookie is just anonymous.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    let now_utc = time::OffsetDateTime::now_utc();
    if let Some(presented) = bearer(headers) {
        let invalid =
            || ApiError::Unauthorized("the API token is invalid, expired or revoked".into());
        let token = presented.map_err(|()| invalid())?;
        let hash = auth::secret_hash(&token);
        // Read before any lookup: a change announced after this makes what the lookup
        // finds belong to an older generation.
        let generation = state.db().auth_generation();
        if let Some(g) = generation
            && let Some(hit) = state.token_cache().get(&hash, g, now_utc, TOUCH_EVERY)
        {
            if let Some(id) = hit.touch {
                touch_token(state, id);
            }
            return Ok(Some(hit.principal));
        }
        // Formatted only now: a remembered token needs no stored-form times.
        let now = clock::format(now_utc);
        let prefix = auth::token_prefix(&token).ok_or_else(invalid)?.to_string();
        let lookup_now = now.clone();
        let found = state
            .db()
            .read(move |c| users::token_lookup(c, &prefix, &lookup_now))
            .await?;
        let Some((stored, t, user)) = found else {
            return Err(invalid());
        };
        if !auth::secrets_equal(&stored, &hash) {
            return Err(invalid());
        }
        let mut last_used_at = t.last_used_at;
        if last_used_at
            .as_deref()
            .is_none_or(|at| *at < *clock::format(now_utc - TOUCH_EVERY))
        {
            touch_token(state, t.id);
            last_used_at = Some(now);
        }
        let role = t.role.min(user.role);
        let principal = Principal {
            user,
            role,
            via: Via::Token {
                id: t.id,
                prefix: t.prefix,
            },
        };
        if let Some(g) = generation {
            state.token_cache().insert(
                hash,
                g,
                principal.clone(),
                t.id,
                t.expires_at.as_deref(),
                last_used_at.as_deref(),
            );
        }
        return Ok(Some(principal));
    }
    let Some(cookie) = session_cookie(headers) else {
        return Ok(None);
    };
    let id_hash = auth::secret_hash(&cookie);
    let now = clock::format(now_utc);
    let idle = state.config().security.session_idle();
    let cutoff = time_ago(idle);
    let lookup_hash = id_hash.clone();
    let Some(s) = state
        .db()
        .read(move |c| users::session_lookup(c, &lookup_hash, &now, &cutoff))
        .await?
    else {
        return Ok(None);
    };
    if s.last_seen_at < time_ago(TOUCH_EVERY) {
        let db = state.db().clone();
        let h = id_hash.clone();
        tokio::spawn(async move {
            let _ = db.write(move |c| users::touch_session(c, &h)).await;
        });
    }
    Ok(Some(Principal {
        role: s.user.role,
        user: s.user,
        via: Via::Session {
            id_hash,
            csrf_token: s.csrf_token,
        },
    }))
}

/// Middleware on every route (see `http::routes`): rate limit of the route's tier,
/// credentials, same-origin and CSRF checks, then the route's access rule. The
/// resolved [`Caller`] goes into the request for handlers.
pub async fn authorize(
    State((state, spec)): State<(AppState, RouteSpec)>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, &spec, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check(state: &AppState, spec: &RouteSpec, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let ip = client_ip(&parts, &state.config().security);
    if spec.tier != Tier::General
        && let Err(wait) = state.limiters().check(spec.tier, ip)
    {
        tracing::warn!(%ip, route = spec.path, retry_after_secs = wait.as_secs(), "rate limited");
        return Err(ApiError::RateLimited {
            message: format!(
                "too many requests to {}; retry in {} s",
                spec.path,
                wait.as_secs().max(1)
            ),
            retry_after: wait,
        });
    }
    // Public routes ignore credentials: probes and sign-in work even when the
    // database cannot be read, and a stale token never blocks them.
    let principal = if spec.access == Access::Public {
        None
    } else {
        resolve(state, &parts.headers).await?
    };
    let unsafe_req = unsafe_method(&parts.method);
    let by_cookie = matches!(
        principal,
        Some(Principal {
            via: Via::Session { .. },
            ..
        })
    );
    // Cookie-carrying (or sign-in) browser requests must come from this site.
    if unsafe_req && (by_cookie || spec.tier == Tier::Auth) && cross_site(&parts.headers, state) {
        return Err(ApiError::Forbidden("cross-site request refused".into()));
    }
    if unsafe_req
        && let Some(Principal {
            via: Via::Session { csrf_token, .. },
            ..
        }) = &principal
    {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth::secrets_equal(presented, csrf_token) {
            return Err(ApiError::Forbidden(format!(
                "missing or wrong {CSRF_HEADER} header (the csrf_token from sign-in or /api/auth/me)"
            )));
        }
    }
    let role = principal.as_ref().map(|p| p.role);
    let needed = match spec.access {
        Access::Public => None,
        Access::PublicRead if state.config().security.public_read => None,
        Access::PublicRead | Access::Viewer => Some(Role::Viewer),
        Access::Editor => Some(Role::Editor),
        Access::Admin => Some(Role::Admin),
    };
    match (needed, role) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(ApiError::Unauthorized(
                "sign in (POST /api/auth/login) or send an API token (Authorization: Bearer …)"
                    .into(),
            ));
        }
        (Some(n), Some(r)) if r < n => {
            return Err(ApiError::Forbidden(format!(
                "{} {} needs the {n} role; you are {r}",
                spec.method, spec.path
            )));
        }
        _ => {}
    }
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    parts.extensions.insert(Caller {
        principal,
        ip,
        request_id,
    });
    Ok(Request::from_parts(parts, body))
}

// ---- handlers ------------------------------------------------------------------------

/// Hash a password on a blocking thread, at most two at a time (19 MiB each).
pub async fn hash(state: &AppState, password: String) -> Result<String, ApiError> {
    let _permit = state.argon2_permit().await;
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)
}

async fn verify(state: &AppState, password: String, phc: Option<String>) -> bool {
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
async fn start_session(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// `POST /api/auth/login`: a new session (cookie) for a correct email and password.
pub async fn login(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    super::json::Json(body): super::json::Json<LoginBody>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_string();
    if let Err((wait, newly_locked)) = state.limiters().check_account(&email) {
        if newly_locked {
            tracing::warn!(ip = %caller.ip, account = %email, retry_after_secs = wait.as_secs(), "sign-in lockout: too many attempts for this account");
            audit(
                &state,
                caller
                    .event("auth.lockout", Outcome::Denied)
                    .target(&email)
                    .details(json!({"retry_after_secs": wait.as_secs()})),
            )
            .await;
        }
        return Err(ApiError::RateLimited {
            message: format!(
                "too many sign-in attempts for this account; retry in {} s",
                wait.as_secs().max(1)
            ),
            retry_after: wait,
        });
    }
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
            .target(&email)
            .details(json!({"reason": reason}))
    };
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        // Only someone who knows the password learns that the account is disabled.
        Some(_) if ok => {
            audit(&state, fail("disabled")).await;
            return Err(ApiError::Forbidden("this account is disabled".into()));
        }
        Some(_) => {
            audit(&state, fail("wrong password")).await;
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
        None => {
            audit(&state, fail("unknown email")).await;
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
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
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
pub async fn me(Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
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

/// `GET /api/auth/setup`: whether the first admin still has to be created.
pub async fn setup_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = state.db().read(users::count).await?;
    Ok(Json(
        json!({"required": users == 0, "token_active": state.setup_token().is_active()}),
    ))
}

#[derive(Deserialize)]
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
pub async fn setup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
    let email =
        auth::parse_email("email", &body.email).map_err(|f| ApiError::Validation(vec![f]))?;
    auth::check_password("password", &body.password, Some(&email))
        .map_err(|f| ApiError::Validation(vec![f]))?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /api/auth/password`: change one's own password (the current one is checked).
/// Every session of the user ends; a cookie caller gets a fresh session.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    token: String,
    password: String,
}

/// `POST /api/auth/reset-password`: set a password with a one-time link's token.
pub async fn reset_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
            let u = ops::change_user(c, user_id, &change, &actor)?;
            audit::record(
                c,
                &actor
                    .event("user.password_reset", Outcome::Success)
                    .target(&u.email),
            )?;
            Ok(u)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({"user": user})))
}

#[derive(Deserialize)]
pub struct TokenListQuery {
    user_id: Option<i64>,
    all: Option<bool>,
}

/// `GET /api/auth/tokens`: own tokens; an admin may pass `user_id=` or `all=true`.
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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

#[derive(Deserialize)]
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
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
