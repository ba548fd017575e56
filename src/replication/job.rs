//! The server's off-site copy after each verified backup: in the background, so that
//! neither writers nor requests wait for the network; the outcome is logged, audited
//! (`backup.offsite`) and, on failure, tracked as an error (category network).

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::audit::Actor;
use crate::backup::signing::Location;
use crate::db::audit::Outcome;
use crate::state::AppState;
use crate::telemetry::errors::{Category, ErrorEvent, Severity};

use super::Remote;

/// Copy `archive` off the machine in the background.
pub fn spawn_push(state: AppState, archive: PathBuf) {
    tokio::spawn(async move {
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = state.config();
        let res = match (
            Remote::new(&config.backup.remote),
            Location::of(&config.backup, &config.data_dir).load_or_create(),
        ) {
            (Ok(remote), Ok(key)) => {
                let pushed = remote
                    .push(&archive, &key, &|_, _| {})
                    .await
                    .map(|copy| (remote.name().to_string(), copy))
                    .map_err(|e| e.to_string());
                if pushed.is_ok()
                    && let Err(e) = remote.prune().await
                {
                    tracing::warn!(error = %e, "off-site retention failed");
                }
                pushed
            }
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(e.to_string()),
        };
        let event = match &res {
            Ok((at, copy)) => {
                tracing::info!(archive = %name, object = %copy.object, bytes = copy.size, remote = %at, "off-site copy done");
                Actor::system()
                    .event("backup.offsite", Outcome::Success)
                    .target(name.clone())
                    .details(serde_json::json!({"object": copy.object, "bytes": copy.size, "encrypted": copy.encrypted}))
            }
            Err(e) => {
                tracing::error!(archive = %name, error = %e, "off-site copy failed");
                state.errors().record(ErrorEvent::new(
                    Category::Network,
                    Severity::High,
                    "backup",
                    "backup.offsite",
                    format!("{name}: {e}"),
                ));
                Actor::system()
                    .event("backup.offsite", Outcome::Failure)
                    .target(name.clone())
                    .details(serde_json::json!({"error": e}))
            }
        };
        crate::auth::audit::write(&state.ledger(), event).await;
    });
}

/// The off-site part of the `backup` health check: degraded when the last upload failed
/// (after the last success), or the newest copy is older than
/// `backup.remote.max_age_hours` (none yet: once the server has run that long).
pub async fn health(state: &AppState) -> Result<Result<String, String>, crate::db::DbError> {
    let max_age_hours = state.config().backup.remote.max_age_hours;
    let (ok, failed) = state
        .db()
        .read(|c| {
            Ok((
                crate::db::audit::last_of(c, "backup.offsite", Outcome::Success)?,
                crate::db::audit::last_of(c, "backup.offsite", Outcome::Failure)?,
            ))
        })
        .await?;
    if let Some((at, details)) = &failed
        && ok.as_ref().is_none_or(|(ok_at, _)| ok_at < at)
    {
        let why = details
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Ok(Err(format!(
            "the last off-site copy failed at {at}: {why}; `appliance backup push` retries it"
        )));
    }
    let max_age = Duration::from_secs(max_age_hours * 3600);
    Ok(match ok {
        Some((at, _)) => {
            let age = crate::clock::age_secs(&at).unwrap_or(0.0);
            if max_age_hours > 0 && age > max_age.as_secs_f64() {
                Err(format!(
                    "the newest off-site copy is {} h old (backup.remote.max_age_hours = {max_age_hours})",
                    (age / 3600.0) as u64
                ))
            } else {
                Ok(format!("off-site copy at {at}"))
            }
        }
        None if max_age_hours > 0 && state.uptime() > max_age => Err(format!(
            "no off-site copy in {max_age_hours} h of uptime; check backup.remote and the log"
        )),
        None => Ok("no off-site copy yet".into()),
    })
}
