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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsQuery {
    category: Option<String>,
    severity: Option<String>,
    component: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/admin/errors?category=&severity=&component=&since=&limit=&offset=`: error
/// groups, most recently seen first, with how many events were dropped (queue full).
pub async fn errors(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ErrorsQuery>,
) -> Result<Json<Value>, ApiError> {
    use super::FieldError;
    let mut errs = Vec::new();
    const CATEGORIES: [&str; 6] = [
        "database",
        "validation",
        "authentication",
        "network",
        "business_logic",
        "system",
    ];
    if let Some(c) = &q.category
        && !CATEGORIES.contains(&c.as_str())
    {
        errs.push(FieldError::new(
            "category",
            format!("must be one of {}", CATEGORIES.join(", ")),
        ));
    }
    if let Some(s) = &q.severity
        && !["low", "medium", "high", "critical"].contains(&s.as_str())
    {
        errs.push(FieldError::new(
            "severity",
            "must be low, medium, high or critical",
        ));
    }
    let since = q
        .since
        .as_deref()
        .and_then(|v| super::time_param("since", v, &mut errs));
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        errs.push(FieldError::new("limit", "must be between 1 and 500"));
    }
    if !errs.is_empty() {
        return Err(ApiError::BadParameter {
            message: "invalid error query".into(),
            fields: errs,
        });
    }
    let filter = crate::ops::errors::Filter {
        category: q.category,
        severity: q.severity,
        component: q.component,
        since,
        limit,
        offset: q.offset.unwrap_or(0),
    };
    let groups = state
        .db()
        .read(move |c| crate::ops::errors::list(c, &filter))
        .await?;
    Ok(Json(json!({
        "groups": groups,
        "last_minute": state.errors().last_minute(),
        "dropped": state.errors().dropped(),
    })))
}

/// `GET /api/admin/alerts`: the alerts firing now and the webhook's state.
pub async fn alerts(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "active": state.alerts().active(),
        "webhook": state.alerts().webhook_status(),
    }))
}
