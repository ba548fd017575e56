//! `/api/admin/backups…`: list archives with the last run's status, start a backup and
//! verify an archive (background jobs, `crate::ops::jobs`: 202 at once, one at a time),
//! download an archive (streamed). The work itself is `crate::backup`. Admin-only.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ApiError;
use crate::backup::{self, BackupError, Trigger};
use crate::db::backups as store;
use crate::ops::{backups, jobs};
use crate::state::AppState;

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::AlreadyRunning(_) => ApiError::Conflict {
                field: None,
                message: "a backup is already running; try again when it has finished".into(),
            },
            // A backup that does not fit runs in the background (POST answers 202 before
            // it starts); its failure is reported in `last_run`.
            e @ BackupError::InsufficientSpace { .. } => ApiError::Unavailable(e.to_string()),
            BackupError::NotFound(_) | BackupError::BadName { .. } => {
                ApiError::NotFound("no such backup".into())
            }
            // The archive by its name only: an API answer never shows server paths.
            e @ (BackupError::Invalid { .. }
            | BackupError::Unauthenticated { .. }
            | BackupError::NewerSchema { .. }) => ApiError::Unprocessable(e.brief()),
            BackupError::Db(e) => e.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// A name from the URL must be an archive name: never a path.
fn checked_name(name: &str) -> Result<&str, ApiError> {
    if backup::parse_name(name).is_some() && !name.contains('/') {
        Ok(name)
    } else {
        Err(ApiError::NotFound("no such backup".into()))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let dir = state.config().backups_dir();
    let entries = tokio::task::spawn_blocking(move || backup::list(&dir))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    let (verifications, last_run, last_success) = state
        .db()
        .read(|c| {
            Ok((
                store::verifications(c)?,
                store::last_run(c)?,
                store::last_success(c)?,
            ))
        })
        .await?;
    let backups: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "created_at": crate::clock::format(e.created_at),
                "trigger": e.trigger,
                "size_bytes": e.size_bytes,
                "verification": verifications.get(&e.name),
            })
        })
        .collect();
    let cfg = &state.config().backup;
    let data_dir = state.data_dir().clone();
    let last_restore = tokio::task::spawn_blocking(move || backup::pending::last(&data_dir))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let offsite = offsite(&state).await;
    Ok(Json(json!({
        "backups": backups,
        "offsite": offsite,
        "last_restore": last_restore,
        "running": state.backups().running(),
        "last_run": last_run,
        "last_success": last_success,
        "schedule": {
            "cron": cfg.schedule,
            "next_run": backups::next_run(&state, OffsetDateTime::now_utc()).map(crate::clock::format),
        },
        "retention": {
            "keep_last": cfg.keep_last,
            "keep_daily": cfg.keep_daily,
            "keep_weekly": cfg.keep_weekly,
        },
    })))
}

/// The off-site copies in the bucket, by archive name (`{"configured": false}` without
/// `[backup.remote]`); the bucket gets 5 s to answer, else `error` says so.
async fn offsite(state: &AppState) -> Value {
    let config = &state.config().backup.remote;
    if !config.enabled() {
        return json!({"configured": false});
    }
    let remote = match crate::replication::Remote::new(config) {
        Ok(r) => r,
        Err(e) => return json!({"configured": true, "error": e.to_string()}),
    };
    let listed = tokio::time::timeout(std::time::Duration::from_secs(5), remote.list()).await;
    match listed {
        Ok(Ok(items)) => {
            let copies: serde_json::Map<String, Value> = items
                .into_iter()
                .map(|i| {
                    let name = i.archive.clone();
                    (name, serde_json::to_value(i).unwrap_or_default())
                })
                .collect();
            json!({"configured": true, "bucket": remote.name(), "copies": copies})
        }
        Ok(Err(e)) => json!({"configured": true, "bucket": remote.name(), "error": e.to_string()}),
        Err(_) => {
            json!({"configured": true, "bucket": remote.name(), "error": "the bucket did not answer within 5 s"})
        }
    }
}

/// Start a backup now. 202 at once (the archive may take a while); 409 when one is
/// already running. Progress and the result show in `GET /api/admin/backups`.
/// `POST /api/admin/backups`: take a backup as a background job (write, verify, prune):
/// 202 with the job at once; 409 while a backup runs (here, the scheduler or the CLI).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: super::caller::Caller,
) -> Result<Response, ApiError> {
    let lock = backups::acquire(&state).await?;
    let started_at = OffsetDateTime::now_utc();
    let bg = state.clone();
    let actor = caller.actor();
    // A browser session is the admin UI's "Back up now"; a token is an API client.
    let trigger = match caller.principal.as_ref().map(|p| &p.via) {
        Some(super::caller::Via::Session { .. }) => Trigger::Ui,
        _ => Trigger::Api,
    };
    let spec = jobs::Spec {
        kind: jobs::Kind::Backup,
        actor: actor.clone(),
        target: None,
        // backup.create is audited by the backup job itself.
        audit_action: None,
    };
    let job = jobs::start(&state, spec, move |progress| async move {
        progress.step("writing");
        let outcome = backups::run(&bg, lock, trigger, actor)
            .await
            .map_err(|e| e.brief())?;
        Ok(json!({
            "name": outcome.created.name,
            "size_bytes": outcome.created.size_bytes,
            "verified": outcome.verified.as_ref().map(Result::is_ok),
            "verify_error": outcome.verified.as_ref().and_then(|v| v.as_ref().err()),
            "pruned": outcome.pruned,
        }))
    })
    .await?;
    let mut v = json!({
        "status": "started",
        "trigger": trigger.as_str(),
        "started_at": crate::clock::format(started_at),
        "job": jobs::view(&state, &job),
    });
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "location".into(),
            format!("/api/admin/jobs/{}", job.id).into(),
        );
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/admin/jobs/{}", job.id))],
        Json(v),
    )
        .into_response())
}

/// Download an archive, streamed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = checked_name(&name)?;
    let path = backup::resolve(&state.config().backups_dir(), name)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound("no such backup".into()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/admin/backups/{name}/verify`: verify an archive as a background job and
/// record the result: 202 with the job at once (404 for no such archive, 409 while a
/// verification runs). The job fails naming what is wrong when the archive is bad.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(
    State(state): State<AppState>,
    caller: super::caller::Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = checked_name(&name)?.to_string();
    backup::resolve(&state.config().backups_dir(), &name)?;
    let spec = jobs::Spec {
        kind: jobs::Kind::BackupVerify,
        actor: caller.actor(),
        target: Some(name.clone()),
        audit_action: Some("backup.verify"),
    };
    let bg = state.clone();
    let job = jobs::start(&state, spec, move |progress| async move {
        progress.step("verifying");
        match backups::verify(&bg, &name).await {
            Ok(Ok(v)) => {
                // What the archive holds beside what is live, for a restore's decision.
                let live = bg
                    .db()
                    .read(|c| {
                        Ok((
                            crate::db::inspect::row_counts(c)?,
                            crate::db::migrations::status(c)?.current_version(),
                        ))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({
                    "name": name,
                    "ok": true,
                    "archive": {
                        "created_at": v.manifest.created_at,
                        "app_version": v.manifest.app_version,
                        "schema_version": v.manifest.schema_version,
                        "row_counts": v.manifest.row_counts,
                        "origin": v.origin,
                    },
                    "live": {"row_counts": live.0, "schema_version": live.1, "app_version": crate::VERSION},
                }))
            }
            Ok(Err(problem)) => Err(problem),
            Err(e) => Err(e.brief()),
        }
    })
    .await?;
    Ok(super::admin::accepted(&state, &job))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The archive's name, typed again: the confirmation.
    confirm: String,
}

/// `POST /api/admin/backups/{name}/restore` `{"confirm": "<name>"}`: replace the live
/// data with the archive's. 202 at once; the server then stops serving, restores at
/// its restart in the same process (verified first, the old data kept aside, every
/// step undone on a failure) and serves again; `last_restore` in the list says how it
/// ended.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn restore(
    State(state): State<AppState>,
    caller: super::caller::Caller,
    Path(name): Path<String>,
    super::json::Json(body): super::json::Json<RestoreBody>,
) -> Result<Response, ApiError> {
    let name = checked_name(&name)?.to_string();
    backup::resolve(&state.config().backups_dir(), &name)?;
    if body.confirm.trim() != name {
        return Err(ApiError::Validation(vec![super::FieldError::new(
            "confirm",
            "must be the archive's name, typed exactly, to confirm the restore",
        )]));
    }
    // Not while a backup runs (it would be abandoned by the restart), and none may start
    // before the restart: the lock (an flock, closed on exec) is held until the process
    // is replaced or ends.
    let lock = backups::acquire(&state).await?;
    let asked = crate::ops::restore::request(&state, &name, &caller.actor()).await?;
    std::mem::forget(lock);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "archive": name,
            "requested_at": asked.requested_at,
            "restarting": true,
            "message": "the server stops serving now, restores the archive and starts again; sessions in the restored data are those of the archive",
        })),
    )
        .into_response())
}
