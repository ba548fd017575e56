//! The server's off-site copy after each verified backup: in the background, so that
//! neither writers nor requests wait for the network; the outcome is logged, audited
//! (`backup.offsite`) and, on failure, tracked as an error (category network).

use std::path::PathBuf;

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
            (Ok(remote), Ok(key)) => remote
                .push(&archive, &key, &|_, _| {})
                .await
                .map(|copy| (remote.name().to_string(), copy))
                .map_err(|e| e.to_string()),
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
