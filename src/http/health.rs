//! `GET /health` (liveness: cheap, never touches the database) and `GET /readyz`
//! (the deep checks of [`crate::ops::health`]; 503 only when failing).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::AppState;
use crate::ops::health::{self, Status};

pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": crate::VERSION,
        "uptime_secs": state.uptime().as_secs(),
    }))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let report = health::deep_checks(&state).await;
    let code = if report.status == Status::Failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    if report.status != Status::Ok {
        tracing::warn!(status = ?report.status, "readiness is not ok: {:?}", report.checks);
    }
    // A failing readiness report is a report, not an API error: json_errors passes it on.
    (code, Json(report))
}
