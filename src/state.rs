//! The composition root: [`AppState`], everything a running server shares (the
//! configuration, the data directory, the database, the index, the in-process state of
//! backups, errors, alerts, rate limits and tokens), handed to handlers through axum's
//! `State` and to the server's duties in `ops`. It may name anything; only layer 4
//! (`ops`) and up may name it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_http::metrics::in_flight_requests::InFlightRequestsCounter;

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::db::Db;
use crate::search::Search;

/// Shared state handed to handlers through axum's `State`; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

/// What an [`AppState`] holds; built once by `App::build`.
pub struct Parts {
    pub config: Config,
    pub data_dir: DataDir,
    pub db: Db,
    pub search: Arc<Search>,
    pub backups: crate::ops::backups::BackupState,
    /// Background jobs running now (their records are in the database).
    pub jobs: crate::ops::jobs::Jobs,
    pub started_at: Instant,
    pub in_flight: InFlightRequestsCounter,
    /// Last overall readiness status reported, to log transitions only.
    pub last_readiness: std::sync::Mutex<Option<crate::ops::health::Status>>,
    pub limiters: crate::http::limits::Limiters,
    pub errors: Arc<crate::telemetry::errors::Tracker>,
    pub alerts: crate::ops::alerts::Alerts,
    pub setup_token: crate::auth::SetupToken,
    /// Password hashes in flight (19 MiB and a core each).
    pub argon2: tokio::sync::Semaphore,
    /// The last hour of request rate, latency and errors (dashboard charts).
    pub history: crate::ops::history::History,
    /// API tokens verified, remembered per generation of users and tokens.
    pub tokens: crate::http::token_cache::TokenCache,
    /// A restart asked for (a restore from the admin UI): `serve` stops, then starts
    /// again in the same process.
    pub restart: Restart,
}

/// A request to stop and start again, and whether one was made.
#[derive(Default)]
pub struct Restart {
    asked: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Restart {
    /// Ask for a restart: whoever waits in [`Restart::asked`] wakes.
    pub fn ask(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
    /// Whether a restart was asked for.
    pub fn was_asked(&self) -> bool {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Resolves when a restart is asked for.
    pub async fn asked(&self) {
        if self.was_asked() {
            return;
        }
        self.notify.notified().await;
    }
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        AppState(Arc::new(parts))
    }
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    pub fn data_dir(&self) -> &DataDir {
        &self.0.data_dir
    }
    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub fn search(&self) -> &Arc<Search> {
        &self.0.search
    }
    pub fn token_cache(&self) -> &crate::http::token_cache::TokenCache {
        &self.0.tokens
    }
    /// Where standalone bookkeeping (audit entries, backup runs) goes: the writer.
    pub fn ledger(&self) -> crate::db::ledger::Ledger {
        crate::db::ledger::Ledger::Server(self.0.db.clone())
    }
    pub fn backups(&self) -> &crate::ops::backups::BackupState {
        &self.0.backups
    }
    pub fn jobs(&self) -> &crate::ops::jobs::Jobs {
        &self.0.jobs
    }
    pub fn uptime(&self) -> Duration {
        self.0.started_at.elapsed()
    }
    /// HTTP requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.get()
    }
    /// Record the overall readiness status; returns the previous one when it changed.
    pub fn readiness_changed(
        &self,
        now: crate::ops::health::Status,
    ) -> Option<Option<crate::ops::health::Status>> {
        let mut last = self
            .0
            .last_readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = last.replace(now);
        (before != Some(now)).then_some(before)
    }
    /// The error recorder (see `telemetry::errors`).
    pub fn errors(&self) -> &Arc<crate::telemetry::errors::Tracker> {
        &self.0.errors
    }
    /// Alert state and the webhook queue (see `ops::alerts`).
    pub fn alerts(&self) -> &crate::ops::alerts::Alerts {
        &self.0.alerts
    }
    pub fn limiters(&self) -> &crate::http::limits::Limiters {
        &self.0.limiters
    }
    /// The one-time first-admin token (active only while no user exists).
    pub fn setup_token(&self) -> &crate::auth::SetupToken {
        &self.0.setup_token
    }
    /// Wait for a slot to hash or verify a password (at most two at once).
    pub async fn argon2_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.0.argon2.acquire().await.ok()
    }
    /// The last hour of HTTP traffic (see `ops::history`).
    pub fn history(&self) -> &crate::ops::history::History {
        &self.0.history
    }
    /// Stop and start again (see [`Restart`]).
    pub fn restart(&self) -> &Restart {
        &self.0.restart
    }
    /// The counter the router's in-flight layer updates.
    pub fn in_flight_counter(&self) -> InFlightRequestsCounter {
        self.0.in_flight.clone()
    }
}
