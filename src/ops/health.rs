//! Deep health checks: a read through the reader pool, the writer available within a
//! timeout, migrations current, free disk in the data directory, the search index, and
//! the age and result of the last backup. Each check runs
//! concurrently under its own timeout, so a wedged database makes the report `failing`
//! instead of hanging the probe.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::db::migrations;
use crate::state::AppState;

/// Checks whose failure means the process is stuck and a restart can cure it: the
/// watchdog withholds its ping, and the `health_check` alert fires.
pub const RESTART_WORTHY: [&str; 3] = ["database_read", "database_write", "search_index"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    pub detail: String,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub checks: BTreeMap<&'static str, Check>,
}

/// Run every deep check; the overall status is the worst of them.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn deep_checks(state: &AppState) -> Report {
    let timeout = Duration::from_millis(state.config().health.check_timeout_ms);
    let (database_read, database_write, migrations, disk, search_index, backup) = tokio::join!(
        timed(timeout, check_read(state)),
        timed(timeout, check_writer(state, timeout)),
        timed(timeout, check_migrations(state)),
        timed(timeout, check_disk(state)),
        timed(timeout, check_search(state)),
        timed(timeout, check_backup(state)),
    );
    let checks = BTreeMap::from([
        ("database_read", database_read),
        ("database_write", database_write),
        ("migrations", migrations),
        ("disk", disk),
        ("search_index", search_index),
        ("backup", backup),
    ]);
    let status = checks
        .values()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Ok);
    Report { status, checks }
}

async fn timed(timeout: Duration, check: impl Future<Output = (Status, String)>) -> Check {
    let start = Instant::now();
    let (status, detail) = match tokio::time::timeout(timeout, check).await {
        Ok(r) => r,
        Err(_) => (
            Status::Failing,
            format!("no answer within {} ms", timeout.as_millis()),
        ),
    };
    Check {
        status,
        detail,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    }
}

async fn check_read(state: &AppState) -> (Status, String) {
    if let Err(e) = state.db().check_file().await {
        return (Status::Failing, e.to_string());
    }
    if let Some(Err(problem)) = state.db().integrity() {
        return (
            Status::Failing,
            format!(
                "the check after start found the file damaged ({problem}); stop the server, run appliance doctor, restore the latest backup"
            ),
        );
    }
    let res = state
        .db()
        // Reads a real row, so the pages of a real table are touched.
        .read(crate::db::inspect::instance_id)
        .await;
    match res {
        Ok(_) => (
            Status::Ok,
            "file intact; read a row through the reader pool".into(),
        ),
        Err(e) => (Status::Failing, e.to_string()),
    }
}

/// A failed last backup, or none good for `backup.max_age_hours`, is degraded: the
/// service works, but the operator's safety net does not.
async fn check_backup(state: &AppState) -> (Status, String) {
    match crate::ops::backups::health(state).await {
        Ok(Ok(detail)) => (Status::Ok, detail),
        Ok(Err(problem)) => (Status::Degraded, problem),
        Err(e) => (
            Status::Degraded,
            format!("cannot read the backup status: {e}"),
        ),
    }
}

async fn check_writer(state: &AppState, timeout: Duration) -> (Status, String) {
    match state.db().probe_writer(timeout).await {
        Ok(()) => (Status::Ok, "write lock obtainable".into()),
        Err(e) => (Status::Failing, e.to_string()),
    }
}

async fn check_migrations(state: &AppState) -> (Status, String) {
    match state.db().read(migrations::status).await {
        Ok(st) if st.is_current() => (
            Status::Ok,
            format!("schema at version {}", st.current_version()),
        ),
        Ok(st) => {
            let problems = st.problems();
            let detail = if problems.is_empty() {
                format!(
                    "{} migration(s) pending (schema at {}, binary at {})",
                    st.pending().len(),
                    st.current_version(),
                    st.target_version()
                )
            } else {
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            (Status::Failing, detail)
        }
        Err(e) => (Status::Failing, e.to_string()),
    }
}

async fn check_disk(state: &AppState) -> (Status, String) {
    let root = state.data_dir().root().to_path_buf();
    let health = &state.config().health;
    let free = match tokio::task::spawn_blocking(move || crate::fsutil::disk_space(&root)).await {
        Ok(Ok(space)) => space.free,
        Ok(Err(e)) => {
            return (
                Status::Failing,
                format!("cannot stat the data directory: {e}"),
            );
        }
        Err(e) => return (Status::Failing, format!("disk check failed: {e}")),
    };
    let mib = |b: u64| b / (1024 * 1024);
    if free < health.min_free_disk_bytes {
        (
            Status::Failing,
            format!(
                "{} MiB free, below health.min_free_disk_bytes ({} MiB)",
                mib(free),
                mib(health.min_free_disk_bytes)
            ),
        )
    } else if free < health.warn_free_disk_bytes {
        (
            Status::Degraded,
            format!(
                "{} MiB free, below health.warn_free_disk_bytes ({} MiB)",
                mib(free),
                mib(health.warn_free_disk_bytes)
            ),
        )
    } else {
        (Status::Ok, format!("{} MiB free", mib(free)))
    }
}

async fn check_search(state: &AppState) -> (Status, String) {
    let detail = match state.search().health() {
        Ok(d) => d,
        Err(e) => return (Status::Failing, e),
    };
    let lag_limit = state.search().config().max_lag_secs;
    match state.db().read(crate::db::outbox::outbox_backlog).await {
        Ok((0, _)) => (Status::Ok, detail),
        Ok((n, Some(oldest))) => {
            let age = time::OffsetDateTime::parse(
                &oldest,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
            .unwrap_or(0);
            if age > i64::try_from(lag_limit).unwrap_or(i64::MAX) {
                (
                    Status::Degraded,
                    format!(
                        "{n} changes waiting; the oldest for {age} s (search.max_lag_secs = {lag_limit})"
                    ),
                )
            } else {
                (Status::Ok, format!("{detail}; {n} changes waiting"))
            }
        }
        Ok((n, None)) => (Status::Ok, format!("{detail}; {n} changes waiting")),
        Err(e) => (Status::Failing, e.to_string()),
    }
}
