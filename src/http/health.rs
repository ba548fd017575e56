//! `GET /health` (liveness: cheap, never touches the database) and `GET /readyz`
//! (the deep checks of [`crate::ops::health`]; 503 only when failing).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::ops::health::{self, Status};
use crate::state::AppState;

#[tracing::instrument(level = "debug", skip_all)]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": crate::VERSION,
        "uptime_secs": state.uptime().as_secs(),
    }))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let report = health::deep_checks(&state).await;
    let code = if report.status == Status::Failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    // Probes come every few seconds: log when the status changes, not on every probe.
    if let Some(before) = state.readiness_changed(report.status) {
        let failing: Vec<String> = report
            .checks
            .iter()
            .filter(|(_, c)| c.status != Status::Ok)
            .map(|(name, c)| format!("{name}: {}", c.detail))
            .collect();
        if report.status == Status::Ok {
            tracing::info!(previous = ?before, "readiness is ok");
        } else {
            tracing::warn!(status = ?report.status, previous = ?before, checks = ?failing, "readiness changed");
        }
    }
    // Active alerts ride along (they never change the status code).
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    body["alerts"] = serde_json::to_value(state.alerts().active()).unwrap_or_default();
    // A failing readiness report is a report, not an API error: json_errors passes it on.
    (code, Json(body))
}
