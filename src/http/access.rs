//! Whether a caller may: the per-route [`authorize`] middleware (rate-limit tier,
//! credentials from an API token or the session cookie, same-origin and CSRF checks, the
//! route's [`Access`](super::caller::Access) rule), and the audit shorthand of handlers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::caller::{Access, Caller, Principal, RouteSpec, Via};
use super::limits::{Tier, client_ip};
use super::sessions::{CSRF_HEADER, SESSION_COOKIE, TOUCH_EVERY};
use crate::auth::{self, Role};
use crate::clock;
use crate::db::audit::Event;
use crate::db::users;
use crate::state::AppState;

/// Record an audit event in its own transaction (see `auth::audit::write`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn audit(state: &AppState, event: Event) {
    crate::auth::audit::write(&state.ledger(), event).await;
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
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

pub(super) fn time_ago(d: time::Duration) -> String {
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
pub(super) async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
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
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authorize(
    State((state, spec)): State<(AppState, RouteSpec)>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, &spec, req).await {
        Ok((req, ip)) => {
            let res = next.run(req).await;
            // Only failures spend the sign-in tier's budget (wrong password, setup token
            // or reset link): successful sign-ins never lock an address out.
            if spec.tier == Tier::Auth
                && matches!(
                    res.status(),
                    axum::http::StatusCode::UNAUTHORIZED | axum::http::StatusCode::FORBIDDEN
                )
            {
                state.limiters().auth_failed(ip);
            }
            res
        }
        Err(e) => e.into_response(),
    }
}

/// What a rate-limit refusal says, in words for whoever sees it (no internal paths).
fn limited(tier: Tier, wait: std::time::Duration) -> String {
    let secs = wait.as_secs().max(1);
    match tier {
        Tier::Auth => format!(
            "Too many failed attempts from your address (sign-in, setup or password reset). Try again in {secs} seconds."
        ),
        _ => format!(
            "Too many searches, imports or other heavy requests from your address. Try again in {secs} seconds."
        ),
    }
}

async fn check(
    state: &AppState,
    spec: &RouteSpec,
    req: Request,
) -> Result<(Request, std::net::IpAddr), ApiError> {
    let (mut parts, body) = req.into_parts();
    let ip = client_ip(&parts, &state.config().security);
    if spec.tier != Tier::General
        && let Err(wait) = state.limiters().check(spec.tier, ip)
    {
        tracing::warn!(%ip, route = spec.path, retry_after_secs = wait.as_secs(), "rate limited");
        // Sign-in refusals are audited too, aggregated: one entry per address per
        // REFUSAL_AUDIT_EVERY, counting the refusals since the previous one.
        if spec.tier == Tier::Auth
            && let Some(refused) = state.limiters().note_refusal(ip)
        {
            let mut e = crate::db::audit::Event::new(
                "anonymous",
                "auth.rate_limited",
                crate::db::audit::Outcome::Denied,
            );
            e.target = Some(spec.path.to_string());
            e.ip = Some(ip.to_string());
            e.request_id = parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            e.details = serde_json::json!({
                "refused": refused,
                "aggregated_secs": super::limits::REFUSAL_AUDIT_EVERY.as_secs(),
            });
            audit(state, e).await;
        }
        return Err(ApiError::RateLimited {
            message: limited(spec.tier, wait),
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
    Ok((Request::from_parts(parts, body), ip))
}
