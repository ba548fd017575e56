//! The outbox indexer: a background task that applies `search_outbox` rows to the index
//! at most once per `search.commit_interval_ms`, woken early by writes (and polling, so
//! rows written by another process — `appliance articles import` — are picked up too).
//! At start its first pass replays everything above the index's committed payload; at
//! shutdown a last pass indexes what was acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Search;

pub fn spawn(
    search: Arc<Search>,
    errors: Arc<crate::telemetry::errors::Tracker>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_millis(search.config().commit_interval_ms);
        let mut last: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if let Some(since) = last.map(|l| l.elapsed())
                && since < interval
            {
                tokio::select! {
                    () = crate::shutdown::stopped(&mut stop) => break,
                    () = tokio::time::sleep(interval - since) => {}
                }
            }
            last = Some(Instant::now());
            match search.apply_pending().await {
                Ok(0) => {}
                // There may be more (a pass stops after one commit interval): go again,
                // spaced by the interval above.
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "indexing failed; will retry");
                    use crate::telemetry::errors::{Category, ErrorEvent, Severity};
                    errors.record(ErrorEvent::new(
                        Category::System,
                        Severity::High,
                        "indexer",
                        "index.apply_outbox",
                        e.to_string(),
                    ));
                }
            }
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = search.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
        match search.apply_pending().await {
            Ok(n) => tracing::debug!(rows = n, "final index pass"),
            Err(e) => {
                tracing::warn!(error = %e, "final index pass failed; the next start replays it")
            }
        }
    })
}
