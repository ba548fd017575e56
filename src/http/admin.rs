//! `/api/admin/…`: operations on the running appliance: the search index (status, verify
//! database vs index, rebuild swapped in atomically), errors and alerts, and what the
//! admin UI's dashboard, migrations and settings pages show. All admin-only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiError;
use crate::db::articles as store;
use crate::ops::jobs;
use crate::state::AppState;

#[tracing::instrument(level = "debug", skip_all)]
pub async fn index_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let backlog = state.db().read(crate::db::outbox::outbox_backlog).await?;
    Ok(Json(index_facts(&state, backlog)))
}

/// The index's documents, last commit, outbox backlog and lag, and health.
fn index_facts(state: &AppState, (pending, oldest): (u64, Option<String>)) -> Value {
    let search = state.search();
    let h = search.handle();
    let lag_secs = oldest.as_deref().and_then(crate::clock::age_secs);
    json!({
        "documents": h.num_docs(),
        "applied_outbox_seq": h.applied_seq(),
        "outbox_pending": pending,
        "outbox_oldest": oldest,
        "lag_secs": lag_secs,
        "last_commit": search.last_commit().map(crate::clock::format),
        "health": match search.health() { Ok(d) => json!({"status": "ok", "detail": d}),
                                         Err(e) => json!({"status": "failing", "detail": e}) },
    })
}

/// `GET /api/admin/overview`: everything the dashboard shows in one answer — the deep
/// health checks (as `/readyz`) with active alerts, version and uptime, article counts,
/// the index, database/WAL size and free disk, the last backup, and recent errors.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn overview(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let health = crate::ops::health::deep_checks(&state).await;
    let (counts, backlog, last_run, last_success, recent_errors) = state
        .db()
        .read(|c| {
            Ok((
                store::counts(c)?,
                crate::db::outbox::outbox_backlog(c)?,
                crate::db::backups::last_run(c)?,
                crate::db::backups::last_success(c)?,
                crate::db::errors::list(
                    c,
                    &crate::db::errors::Filter {
                        limit: 5,
                        ..Default::default()
                    },
                )?,
            ))
        })
        .await?;
    let db_path = state.data_dir().db_path();
    let wal = state.data_dir().wal_path();
    let root = state.data_dir().root().to_path_buf();
    let (db_bytes, wal_bytes, space) = tokio::task::spawn_blocking(move || {
        (
            crate::fsutil::file_len(&db_path),
            crate::fsutil::file_len(&wal),
            crate::fsutil::disk_space(&root).ok(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let started = time::OffsetDateTime::now_utc()
        - time::Duration::try_from(state.uptime()).unwrap_or(time::Duration::ZERO);
    Ok(Json(json!({
        "version": crate::VERSION,
        "uptime_secs": state.uptime().as_secs(),
        "started_at": crate::clock::format(started),
        "health": health,
        "alerts": state.alerts().active(),
        "articles": counts,
        "index": index_facts(&state, backlog),
        "storage": {
            "data_dir": state.data_dir().root(),
            "db_bytes": db_bytes,
            "wal_bytes": wal_bytes,
            "disk_free_bytes": space.map(|s| s.free),
            "disk_total_bytes": space.map(|s| s.total),
        },
        "backup": {
            "running": state.backups().running(),
            "last_run": last_run,
            "last_success": last_success,
            "last_success_age_secs": last_success.as_ref()
                .and_then(|r| crate::clock::age_secs(&r.started_at))
                .map(|s| s as i64),
        },
        "errors": {
            "recent": recent_errors,
            "last_minute": state.errors().last_minute(),
        },
    })))
}

/// `GET /api/admin/metrics/history`: the last hour of request rate, p99 latency and
/// 5xx answers in 30-second buckets (the dashboard's live charts).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn metrics_history(State(state): State<AppState>) -> Json<Value> {
    let now = super::unix_now();
    Json(json!({
        "bucket_secs": crate::ops::history::BUCKET_SECS,
        "now": now,
        "points": state.history().series(now),
    }))
}

/// `GET /api/admin/migrations`: the migrations compiled into this binary and the
/// database's history: applied (with date and checksum) and pending, and any problem
/// (an edited or unknown migration) described.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn migrations(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.db().read(crate::db::migrations::status).await?;
    let applied: std::collections::HashMap<i64, &crate::db::migrations::Applied> =
        status.applied.iter().map(|a| (a.version, a)).collect();
    let rows: Vec<Value> = status
        .embedded
        .iter()
        .map(|e| {
            let a = applied.get(&e.version);
            json!({
                "version": e.version,
                "name": e.name,
                "checksum": e.checksum,
                "state": if a.is_some() { "applied" } else { "pending" },
                "applied_on": a.map(|a| a.applied_on.clone()),
                "applied_checksum": a.map(|a| a.checksum.clone()),
            })
        })
        .collect();
    // Applied here but not compiled into this binary (written by a newer one).
    let rows: Vec<Value> = rows
        .into_iter()
        .chain(
            status
                .applied
                .iter()
                .filter(|a| !status.embedded.iter().any(|e| e.version == a.version))
                .map(|a| {
                    json!({
                        "version": a.version,
                        "name": a.name,
                        "checksum": null,
                        "state": "unknown",
                        "applied_on": a.applied_on,
                        "applied_checksum": a.checksum,
                    })
                }),
        )
        .collect();
    Ok(Json(json!({
        "current_version": status.current_version(),
        "target_version": status.target_version(),
        "migrations": rows,
        "problems": status.problems().iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

/// `GET /api/admin/settings`: the effective configuration, secrets redacted (the same
/// values as `appliance config show`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn settings(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let config = serde_json::to_value(state.config()).map_err(|e| ApiError::Internal(e.into()))?;
    let defaults = serde_json::to_value(crate::config::Config::default())
        .map_err(|e| ApiError::Internal(e.into()))?;
    // One row per key: its value, the default, where the value came from, and what it
    // means (the README's configuration tables).
    let about = crate::config::docs::descriptions();
    let at = |v: &Value, key: &str| {
        key.split('.')
            .try_fold(v, |v, k| v.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let settings: Vec<Value> = crate::config::docs::keys(state.config())
        .into_iter()
        .map(|key| {
            json!({
                "key": key,
                "value": at(&config, &key),
                "default": at(&defaults, &key),
                "origin": state.config().origins.get(&key).copied().unwrap_or(crate::config::Origin::Default),
                "description": about.get(&key),
            })
        })
        .collect();
    Ok(Json(json!({
        "config": config,
        "settings": settings,
        "toml": state.config().to_redacted_toml(),
    })))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn index_verify(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let v = state
        .search()
        .verify()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"consistent": v.is_consistent(), "report": v})))
}

/// `POST /api/admin/index/rebuild`: rebuild the index from the database as a background
/// job: 202 with the job at once (progress: documents done of all); 409 while one runs.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn index_rebuild(
    State(state): State<AppState>,
    caller: super::caller::Caller,
) -> Result<Response, ApiError> {
    let search = state.search().clone();
    let spec = jobs::Spec {
        kind: jobs::Kind::IndexRebuild,
        actor: caller.actor(),
        target: None,
        audit_action: Some("index.rebuild"),
    };
    let job = jobs::start(&state, spec, move |progress| async move {
        let started = std::time::Instant::now();
        progress.step("indexing");
        let report: crate::search::Progress =
            Arc::new(move |done, total| progress.set(done, total));
        let docs = search
            .rebuild(Some(report))
            .await
            .map_err(|e| format!("index rebuild failed: {e}"))?;
        Ok(json!({"documents": docs, "took_ms": started.elapsed().as_millis() as u64}))
    })
    .await?;
    Ok(accepted(&state, &job))
}

/// `202 Accepted` with the job and where to follow it.
pub(super) fn accepted(state: &AppState, job: &crate::db::jobs::JobRow) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/admin/jobs/{}", job.id))],
        Json(json!({"job": jobs::view(state, job)})),
    )
        .into_response()
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    kind: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/admin/jobs?kind=&limit=`: background jobs, newest first.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn jobs_list(
    State(state): State<AppState>,
    super::json::Query(q): super::json::Query<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    use super::FieldError;
    let mut errs = Vec::new();
    let kind = match q.kind.as_deref() {
        Some(k) if jobs::Kind::parse(k).is_none() => {
            errs.push(FieldError::new(
                "kind",
                "must be index_rebuild, backup or backup_verify",
            ));
            None
        }
        k => k.map(str::to_string),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        errs.push(FieldError::new("limit", "must be between 1 and 500"));
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let rows = state
        .db()
        .read(move |c| crate::db::jobs::recent(c, kind.as_deref(), limit))
        .await?;
    let list: Vec<Value> = rows.iter().map(|r| jobs::view(&state, r)).collect();
    Ok(Json(json!({"jobs": list})))
}

/// `GET /api/admin/jobs/{id}`: one job, with its progress while it runs.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn job(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such job".into()))?;
    let row = state
        .db()
        .read(move |c| crate::db::jobs::get(c, id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".into()))?;
    Ok(Json(json!({"job": jobs::view(&state, &row)})))
}

impl From<jobs::JobError> for ApiError {
    fn from(e: jobs::JobError) -> Self {
        match e {
            e @ jobs::JobError::AlreadyRunning { .. } => ApiError::Conflict {
                field: None,
                message: e.to_string(),
            },
            jobs::JobError::Db(e) => e.into(),
        }
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
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
#[tracing::instrument(level = "debug", skip_all)]
pub async fn errors(
    State(state): State<AppState>,
    super::json::Query(q): super::json::Query<ErrorsQuery>,
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
    let filter = crate::db::errors::Filter {
        category: q.category,
        severity: q.severity,
        component: q.component,
        since,
        limit,
        offset: q.offset.unwrap_or(0),
    };
    let groups = state
        .db()
        .read(move |c| crate::db::errors::list(c, &filter))
        .await?;
    Ok(Json(json!({
        "groups": groups,
        "last_minute": state.errors().last_minute(),
        "dropped": state.errors().dropped(),
    })))
}

/// `GET /api/admin/alerts`: the alerts firing now and the webhook's state.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn alerts(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "active": state.alerts().active(),
        "webhook": state.alerts().webhook_status(),
    }))
}
