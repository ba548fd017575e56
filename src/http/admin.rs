//! `/api/admin/…`: operations on the running appliance. For now the search index: status,
//! verify (database vs index), and rebuild (from the database, swapped in atomically).
//! When the users capability lands, these routes are admin-only.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::app::AppState;
use crate::db::articles as store;

pub async fn index_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let search = state.search();
    let h = search.handle();
    let (pending, oldest) = state.db().read(store::outbox_backlog).await?;
    Ok(Json(json!({
        "documents": h.num_docs(),
        "applied_outbox_seq": h.applied_seq(),
        "outbox_pending": pending,
        "outbox_oldest": oldest,
        "health": match search.health() { Ok(d) => json!({"status": "ok", "detail": d}),
                                         Err(e) => json!({"status": "failing", "detail": e}) },
    })))
}

pub async fn index_verify(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let v = state
        .search()
        .verify()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"consistent": v.is_consistent(), "report": v})))
}

pub async fn index_rebuild(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
) -> Result<Json<Value>, ApiError> {
    use crate::db::audit::Outcome;
    let started = std::time::Instant::now();
    let rebuilt = state.search().rebuild(None).await;
    let event = match &rebuilt {
        Ok(docs) => caller
            .event("index.rebuild", Outcome::Success)
            .details(json!({"documents": docs})),
        Err(e) => caller
            .event("index.rebuild", Outcome::Failure)
            .details(json!({"error": e.to_string()})),
    };
    super::auth::audit(&state, event).await;
    let docs =
        rebuilt.map_err(|e| ApiError::Internal(anyhow::anyhow!("index rebuild failed: {e}")))?;
    Ok(Json(json!({
        "documents": docs,
        "took_ms": started.elapsed().as_millis() as u64,
    })))
}
