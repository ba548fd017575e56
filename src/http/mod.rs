//! The HTTP surface: the axum router, its layers (request id, tracing span per request
//! named by the matched route, panic catcher, timeout, body limit, JSON errors) and the
//! handlers, one file per resource. Business rules live in the domain modules, not here.

pub mod access;
pub mod account;
pub mod admin;
pub mod api_doc;
pub mod articles;
pub mod backups;
pub mod bulk;
pub mod caller;
pub mod error;
pub mod health;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod search;
pub mod sessions;
pub mod token_cache;
pub mod tokens;
pub mod ui;
pub mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::metrics::InFlightRequestsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Level, Span};

use crate::state::AppState;
use axum::routing::MethodRouter;
use caller::{Access, RouteSpec};
pub use error::{ApiError, FieldError};
use limits::Tier;

/// Routes whose requests are logged at debug level (probes hit them every few seconds).
const QUIET_ROUTES: [&str; 2] = ["/health", "/readyz"];

/// What the admin dashboard polls every few seconds: counted apart in its charts'
/// history, so that watching the dashboard does not draw traffic on it.
const POLLING_ROUTES: [&str; 2] = ["/api/admin/overview", "/api/admin/metrics/history"];

/// Count and time every request by method, matched route and status class; count 5xx
/// answers as errors and 429s as rate limited.
async fn record_metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status();
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", class.to_owned()),
    ];
    metrics::counter!("appliance_http_requests_total", &labels).increment(1);
    let secs = started.elapsed().as_secs_f64();
    metrics::histogram!("appliance_http_request_duration_seconds", &labels).record(secs);
    state.alerts().observe_latency(secs);
    state.history().observe(
        unix_now(),
        secs,
        status.is_server_error(),
        POLLING_ROUTES.contains(&route.as_str()),
    );
    if status.is_server_error() {
        use crate::telemetry::errors::{Category, ErrorEvent, Severity};
        let report = res.extensions().get::<error::ErrorReport>().cloned();
        if !report.as_ref().is_some_and(|r| r.recorded) {
            let (category, severity, message) = report.map_or_else(
                || {
                    (
                        Category::System,
                        Severity::High,
                        format!("answered {status}"),
                    )
                },
                |r| (r.category, r.severity, r.message),
            );
            state.errors().record(
                ErrorEvent::new(
                    category,
                    severity,
                    "http",
                    format!("{method} {route}"),
                    message,
                )
                .request_id(request_id),
            );
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics::counter!("appliance_http_rate_limited_total").increment(1);
    }
    res
}

/// One entry of the route table: its spec and its handler.
type Entry = (RouteSpec, MethodRouter<AppState>);

fn r(
    method: Method,
    path: &'static str,
    access: Access,
    tier: Tier,
    mr: MethodRouter<AppState>,
) -> Entry {
    (
        RouteSpec {
            method,
            path,
            access,
            tier,
        },
        mr,
    )
}

/// Every route of the API with who may call it and its rate-limit tier. The router is
/// built from this list only, and `tests/security.rs` checks every entry against its
/// own table of expected answers per role, so a new route cannot slip in unreviewed.
#[rustfmt::skip]
fn routes() -> Vec<Entry> {
    use Access::*;
    use Tier::*;
    use axum::routing::{delete, patch};
    use tower_http::compression::CompressionLayer;
    vec![
        r(Method::GET,     "/health",                                 Public,     General,   get(health::health)),
        r(Method::GET,     "/readyz",                                 Public,     General,   get(health::readyz)),
        r(Method::GET,     "/api/openapi.json",                       Public,     General,   get(openapi::serve)),
        // The admin UI (static files; it signs in through /api/auth).
        r(Method::GET,     "/admin",                                  Public,     General,   get(ui::redirect)),
        r(Method::GET,     "/admin/",                                 Public,     General,   get(ui::index).layer(CompressionLayer::new())),
        r(Method::GET,     "/admin/{*path}",                          Public,     General,   get(ui::asset).layer(CompressionLayer::new())),
        // Sign-in and account.
        r(Method::POST,    "/api/auth/login",                         Public,     Auth,      post(sessions::login)),
        r(Method::POST,    "/api/auth/logout",                        Viewer,     General,   post(sessions::logout)),
        r(Method::GET,     "/api/auth/me",                            Viewer,     General,   get(sessions::me)),
        r(Method::GET,     "/api/auth/setup",                         Public,     General,   get(account::setup_status)),
        r(Method::POST,    "/api/auth/setup",                         Public,     Auth,      post(account::setup)),
        r(Method::POST,    "/api/auth/password",                      Viewer,     Auth,      post(account::change_password)),
        r(Method::POST,    "/api/auth/reset-password",                Public,     Auth,      post(account::reset_password)),
        r(Method::GET,     "/api/auth/tokens",                        Viewer,     General,   get(tokens::list_tokens)),
        r(Method::POST,    "/api/auth/tokens",                        Viewer,     General,   post(tokens::create_token)),
        r(Method::DELETE,  "/api/auth/tokens/{id}",                   Viewer,     General,   delete(tokens::revoke_token)),
        // Articles and search.
        r(Method::GET,     "/api/articles",                           PublicRead, General,   get(articles::list)),
        r(Method::POST,    "/api/articles",                           Editor,     General,   post(articles::create)),
        r(Method::POST,    "/api/articles/bulk",                      Editor,     Expensive, post(bulk::bulk)),
        r(Method::POST,    "/api/articles/import",                    Editor,     Expensive, post(bulk::import)),
        r(Method::POST,    "/api/articles/preview",                   Editor,     General,   post(articles::preview)),
        r(Method::GET,     "/api/articles/{key}",                     PublicRead, General,   get(articles::get)),
        r(Method::PATCH,   "/api/articles/{key}",                     Editor,     General,   patch(articles::patch)),
        r(Method::DELETE,  "/api/articles/{key}",                     Editor,     General,   delete(articles::delete)),
        r(Method::POST,    "/api/articles/{key}/restore",             Editor,     General,   post(articles::restore)),
        r(Method::GET,     "/api/search",                             PublicRead, Expensive, get(search::search)),
        // Administration.
        r(Method::GET,     "/api/admin/overview",                     Admin,      General,   get(admin::overview)),
        r(Method::GET,     "/api/admin/metrics/history",              Admin,      General,   get(admin::metrics_history)),
        r(Method::GET,     "/api/admin/migrations",                   Admin,      General,   get(admin::migrations)),
        r(Method::GET,     "/api/admin/settings",                     Admin,      General,   get(admin::settings)),
        r(Method::GET,     "/api/admin/index",                        Admin,      General,   get(admin::index_status)),
        r(Method::GET,     "/api/admin/index/verify",                 Admin,      Expensive, get(admin::index_verify)),
        r(Method::POST,    "/api/admin/index/rebuild",                Admin,      Expensive, post(admin::index_rebuild)),
        r(Method::GET,     "/api/admin/jobs",                         Admin,      General,   get(admin::jobs_list)),
        r(Method::GET,     "/api/admin/jobs/{id}",                    Admin,      General,   get(admin::job)),
        r(Method::GET,     "/api/admin/backups",                      Admin,      General,   get(backups::list)),
        r(Method::POST,    "/api/admin/backups",                      Admin,      Expensive, post(backups::create)),
        r(Method::GET,     "/api/admin/backups/{name}",               Admin,      Expensive, get(backups::download)),
        r(Method::POST,    "/api/admin/backups/{name}/verify",        Admin,      Expensive, post(backups::verify)),
        r(Method::POST,    "/api/admin/backups/{name}/restore",       Admin,      Expensive, post(backups::restore)),
        r(Method::GET,     "/api/admin/users",                        Admin,      General,   get(users::list)),
        r(Method::POST,    "/api/admin/users",                        Admin,      General,   post(users::create)),
        r(Method::GET,     "/api/admin/users/{id}",                   Admin,      General,   get(users::get)),
        r(Method::PATCH,   "/api/admin/users/{id}",                   Admin,      General,   patch(users::patch)),
        r(Method::POST,    "/api/admin/users/{id}/reset-link",        Admin,      General,   post(users::reset_link)),
        r(Method::GET,     "/api/admin/alerts",                       Admin,      General,   get(admin::alerts)),
        r(Method::GET,     "/api/admin/errors",                       Admin,      General,   get(admin::errors)),
        r(Method::GET,     "/api/admin/audit",                        Admin,      General,   get(users::audit_log)),
    ]
}

/// The route table (method, path, access, tier) the router is built from.
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|(spec, _)| spec).collect()
}

/// Count every request against the general per-IP limit (fallbacks included).
async fn general_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let ip = limits::client_ip(&parts, &state.config().security);
    if let Err(wait) = state.limiters().check(Tier::General, ip) {
        return ApiError::RateLimited {
            message: format!("too many requests; retry in {} s", wait.as_secs().max(1)),
            retry_after: wait,
        }
        .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Headers every response carries (API, UI, errors alike).
async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, header};
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(list)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

pub fn router(state: AppState) -> Router {
    let server = &state.config().server;
    let body_limit = usize::try_from(server.body_limit_bytes).unwrap_or(usize::MAX);
    let bulk_limit =
        usize::try_from(state.config().articles.bulk_body_limit_bytes).unwrap_or(usize::MAX);
    let timeout = Duration::from_secs(server.request_timeout_secs);

    // Router::layer wraps what is already there: innermost first, outermost last.
    // Each route gets the authorize layer with its own spec; bulk ingest has its own
    // (larger) body limit, everything else the general one.
    let (mut bulk, mut general) = (Router::new(), Router::new());
    for (spec, mr) in routes() {
        let path = spec.path;
        let mr = mr.route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), spec),
            access::authorize,
        ));
        if path == "/api/articles/bulk" || path == "/api/articles/import" {
            bulk = bulk.route(path, mr);
        } else {
            general = general.route(path, mr);
        }
    }
    let bulk = bulk
        .layer(RequestBodyLimitLayer::new(bulk_limit))
        .layer(DefaultBodyLimit::max(bulk_limit));
    let general = general
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::max(body_limit));
    let mut app = Router::new()
        .merge(bulk)
        .merge(general)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            general_limit,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ));
    if let Some(cors) = cors(&state.config().security.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.config().security.behind_tls_proxy,
        security_headers,
    ))
    .layer(PropagateRequestIdLayer::x_request_id())
    .layer(InFlightRequestsLayer::new(state.in_flight_counter()))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(make_span)
            .on_request(())
            .on_response(on_response)
            .on_failure(()),
    )
    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    .with_state(state)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A query parameter that must be an RFC 3339 time: the stored (UTC, milliseconds) form,
/// or a field error naming `name` pushed to `errs`.
pub(crate) fn time_param(name: &str, value: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(crate::clock::format(t)),
        Err(_) => {
            errs.push(FieldError::new(
                name,
                "must be an RFC 3339 time such as 2026-11-22T10:00:00Z",
            ));
            None
        }
    }
}

fn make_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if QUIET_ROUTES.contains(&route.as_str()) {
        tracing::debug_span!("request", method = %req.method(), route, request_id, status = tracing::field::Empty)
    } else {
        tracing::info_span!("request", method = %req.method(), route, request_id, status = tracing::field::Empty)
    }
}

fn on_response(res: &Response, latency: Duration, span: &Span) {
    span.record("status", res.status().as_u16());
    let ms = latency.as_secs_f64() * 1000.0;
    let quiet = span.metadata().is_some_and(|m| *m.level() == Level::DEBUG);
    if res.status().is_server_error() {
        tracing::warn!(status = res.status().as_u16(), latency_ms = ms, "response");
    } else if quiet {
        tracing::debug!(status = res.status().as_u16(), latency_ms = ms, "response");
    } else {
        tracing::info!(status = res.status().as_u16(), latency_ms = ms, "response");
    }
}

fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    let mut res = ApiError::Internal(anyhow::anyhow!("handler panicked: {msg}")).into_response();
    // The panic hook (telemetry::errors) recorded it already, with its location.
    if let Some(r) = res.extensions_mut().get_mut::<error::ErrorReport>() {
        r.recorded = true;
    }
    res
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": message}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}
