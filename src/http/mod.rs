//! The HTTP surface: the axum router, its layers (request id, tracing span per request
//! named by the matched route, panic catcher, timeout, body limit, JSON errors) and the
//! handlers, one file per resource. Business rules live in the domain modules, not here.

pub mod access;
pub mod admin;
pub mod articles;
pub mod backups;
pub mod error;
pub mod health;
pub mod search;

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

use crate::app::AppState;
pub use error::{ApiError, FieldError};

/// Routes whose requests are logged at debug level (probes hit them every few seconds).
const QUIET_ROUTES: [&str; 2] = ["/health", "/readyz"];

/// Count and time every request by method, matched route and status class; count 5xx
/// answers as errors and 429s as rate limited.
async fn record_metrics(req: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
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
        ("method", method),
        ("route", route),
        ("status", class.to_owned()),
    ];
    metrics::counter!("appliance_http_requests_total", &labels).increment(1);
    metrics::histogram!("appliance_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        crate::telemetry::count_error("http", "high");
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics::counter!("appliance_http_rate_limited_total").increment(1);
    }
    res
}

pub fn router(state: AppState) -> Router {
    let server = &state.config().server;
    let body_limit = usize::try_from(server.body_limit_bytes).unwrap_or(usize::MAX);
    let bulk_limit =
        usize::try_from(state.config().articles.bulk_body_limit_bytes).unwrap_or(usize::MAX);
    let timeout = Duration::from_secs(server.request_timeout_secs);

    // Router::layer wraps what is already there: innermost first, outermost last.
    // Bulk ingest has its own (larger) body limit; everything else the general one.
    let bulk = Router::new()
        .route("/api/articles/bulk", post(articles::bulk))
        .layer(RequestBodyLimitLayer::new(bulk_limit))
        .layer(DefaultBodyLimit::max(bulk_limit));
    let general = Router::new()
        .route("/health", get(health::health))
        .route("/readyz", get(health::readyz))
        .route("/api/articles", get(articles::list).post(articles::create))
        .route(
            "/api/articles/{key}",
            get(articles::get)
                .patch(articles::patch)
                .delete(articles::delete),
        )
        .route("/api/articles/{key}/restore", post(articles::restore))
        .route("/api/search", get(search::search))
        .route("/api/admin/index", get(admin::index_status))
        .route("/api/admin/index/verify", get(admin::index_verify))
        .route("/api/admin/index/rebuild", post(admin::index_rebuild))
        .route(
            "/api/admin/backups",
            get(backups::list).post(backups::create),
        )
        .route("/api/admin/backups/{name}", get(backups::download))
        .route("/api/admin/backups/{name}/verify", post(backups::verify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(bulk)
        .merge(general)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(record_metrics))
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
    ApiError::Internal(anyhow::anyhow!("handler panicked: {msg}")).into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": message}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}
