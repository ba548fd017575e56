//! The scheduled part of cleanup inside `serve`: the safe retention tasks and `PRAGMA
//! optimize` on `cleanup.schedule`, audited as `system`. The tasks themselves are
//! `db::cleanup`; `appliance cleanup` runs them from the CLI.

use crate::db::DbError;
use crate::db::cleanup;

/// Run the safe part of cleanup on `cleanup.schedule` inside `serve`, audited as
/// `system`; None when there is no schedule.
pub fn spawn_scheduler(
    state: crate::state::AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let cron = state.config().cleanup.cron().ok().flatten()?;
    tracing::info!(schedule = %state.config().cleanup.schedule, "cleanup scheduler on (UTC)");
    Some(crate::schedule::spawn(cron, stop, move || {
        let state = state.clone();
        async move { run_scheduled(&state).await }
    }))
}

/// One scheduled pass: retention and `PRAGMA optimize` in one write transaction.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run_scheduled(state: &crate::state::AppState) {
    let (c, s) = (
        state.config().cleanup.clone(),
        state.config().security.clone(),
    );
    let actor = crate::auth::audit::Actor::system();
    let res = state
        .db()
        .write(move |conn| {
            let tasks = cleanup::run_safe(conn, &c, &s)?;
            crate::db::audit::record(
                conn,
                &actor
                    .event("cleanup.run", crate::db::audit::Outcome::Success)
                    .details(
                        serde_json::json!({"scheduled": true, "removed": cleanup::summary(&tasks)}),
                    ),
            )?;
            Ok::<_, DbError>(tasks)
        })
        .await;
    match res {
        Ok(tasks) => {
            let removed: u64 = tasks.iter().filter(|t| t.applied).map(|t| t.count).sum();
            tracing::info!(removed, "scheduled cleanup done");
        }
        Err(e) => {
            tracing::error!(error = %e, "scheduled cleanup failed");
            use crate::telemetry::errors::{Category, ErrorEvent, Severity};
            state.errors().record(ErrorEvent::new(
                Category::Database,
                Severity::Medium,
                "cleanup",
                "cleanup.scheduled",
                e.to_string(),
            ));
        }
    }
}
