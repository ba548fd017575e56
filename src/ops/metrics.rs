//! The Prometheus scrape: gauges that are cheaper to read at scrape time than to keep up
//! to date (file sizes, pool state, index and outbox, last backup, process memory and
//! descriptors, disk) are set here, then the process-wide recorder renders everything
//! (counters and histograms recorded where things happen). Served on its own listener
//! (`metrics.listen`, loopback by default), never on the API port.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::gauge;

use crate::db::backups;
use crate::state::AppState;

/// The router of the metrics listener: `GET /metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let body = render(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

fn file_len(path: &std::path::Path) -> f64 {
    crate::fsutil::file_len(path).unwrap_or(0) as f64
}

/// Set the scrape-time gauges and render the exposition text.
pub async fn render(state: &AppState) -> String {
    let Some(handle) = crate::telemetry::metrics_handle() else {
        return "# metrics recorder unavailable\n".into();
    };
    gauge!("appliance_build_info", "version" => crate::VERSION).set(1.0);
    gauge!("appliance_uptime_seconds").set(state.uptime().as_secs_f64());
    gauge!("appliance_http_requests_in_flight").set(state.in_flight() as f64);
    let (open, in_use) = state.db().reader_pool_state();
    gauge!("appliance_db_readers").set(f64::from(open));
    gauge!("appliance_db_readers_in_use").set(f64::from(in_use));
    let db_path = state.data_dir().db_path();
    gauge!("appliance_db_size_bytes").set(file_len(&db_path));
    gauge!("appliance_db_wal_size_bytes").set(file_len(&state.data_dir().wal_path()));
    gauge!("appliance_search_documents").set(state.search().handle().num_docs() as f64);

    let facts = state
        .db()
        .read(|c| {
            Ok((
                crate::db::outbox::outbox_backlog(c)?,
                backups::last_run(c)?,
                backups::last_success(c)?,
            ))
        })
        .await;
    if let Ok(((pending, oldest), last_run, last_ok)) = facts {
        gauge!("appliance_search_outbox_pending").set(pending as f64);
        let lag = oldest
            .as_deref()
            .and_then(crate::clock::age_secs)
            .unwrap_or(0.0);
        gauge!("appliance_search_outbox_lag_seconds").set(lag);
        if let Some(r) = last_run {
            gauge!("appliance_backup_last_run_ok").set(if r.ok { 1.0 } else { 0.0 });
        }
        if let Some(r) = last_ok {
            if let Some(t) = crate::clock::parse(&r.started_at) {
                gauge!("appliance_backup_last_success_timestamp_seconds")
                    .set(t.unix_timestamp() as f64);
            }
            gauge!("appliance_backup_last_duration_seconds").set(r.duration_ms as f64 / 1000.0);
            gauge!("appliance_backup_last_size_bytes").set(r.size_bytes.unwrap_or(0) as f64);
        }
    }

    let root = state.data_dir().root().to_path_buf();
    let (rss, fds, free) = tokio::task::spawn_blocking(move || {
        (
            process_rss(),
            open_fds(),
            crate::fsutil::disk_space(&root).ok().map(|s| s.free),
        )
    })
    .await
    .unwrap_or((None, None, None));
    if let Some(v) = rss {
        gauge!("appliance_process_resident_memory_bytes").set(v as f64);
    }
    if let Some(v) = fds {
        gauge!("appliance_process_open_fds").set(v as f64);
    }
    if let Some(v) = free {
        gauge!("appliance_disk_free_bytes").set(v as f64);
    }
    handle.run_upkeep();
    handle.render()
}

/// Resident set size from /proc/self/status (VmRSS, in kB).
pub(crate) fn process_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}
