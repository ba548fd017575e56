//! The running appliance: [`App`] owns the start-up sequence (lock the data dir, open
//! and check the database, migrate, bind) and the graceful shutdown (stop accepting,
//! drain with a deadline, stop background tasks, final WAL checkpoint, release the
//! lock). What the running server shares is `state::AppState`.
//!
//! Tests build an `App` on `127.0.0.1:0` and stop it through the shutdown future.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::metrics::in_flight_requests::InFlightRequestsCounter;

use crate::config::Config;
use crate::data_dir::{DataDir, DataDirLock};
use crate::db::Db;
use crate::db::migrations::{self, MigrateReport, MigrationError};
use crate::search::Search;
use crate::shutdown::stopped;
use crate::state::AppState;

/// A built, bound, not yet serving appliance.
pub struct App {
    state: AppState,
    listener: TcpListener,
    /// The Prometheus listener (`metrics.listen`), when metrics are enabled.
    metrics_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    migrate_report: MigrateReport,
    lock: DataDirLock,
    error_rx: tokio::sync::mpsc::Receiver<crate::telemetry::errors::ErrorEvent>,
    webhook_rx: Option<tokio::sync::mpsc::Receiver<crate::ops::alerts::Transition>>,
}

impl App {
    /// Lock the data directory, open the database (WAL, quick_check), apply pending
    /// migrations (after a pre-migration copy) and bind the listener. Every failure is
    /// an error that says what to do; nothing is served until all of it succeeded.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let started_at = Instant::now();
        let data_dir = DataDir::new(&config.data_dir);
        data_dir.create()?;
        let lock = data_dir.lock()?;
        // What interrupted work left (a killed restore, rebuild, verification or backup).
        let (root, backups_at) = (data_dir.root().to_path_buf(), config.backups_dir());
        tokio::task::spawn_blocking(move || {
            crate::backup::leftovers::remove(&root, &backups_at, true)
        })
        .await
        .context("cannot look for leftovers of interrupted work")?;
        let db_path = data_dir.db_path();
        let db = Db::open(&db_path, &config.database)
            .await
            .with_context(|| format!("cannot open database {}", db_path.display()))?;

        let backups = data_dir.backups_dir();
        let migrate_on_start = config.database.migrate_on_start;
        let migrate_report = db
            .with_writer(move |conn| {
                if !migrate_on_start {
                    let st = migrations::status(conn)?;
                    let problems = st.problems();
                    if !problems.is_empty() {
                        return Err(MigrationError::Problems(problems));
                    }
                    let count = st.pending().len();
                    if count > 0 {
                        return Err(MigrationError::PendingRefused { count });
                    }
                }
                migrations::migrate(conn, &backups)
            })
            .await
            .with_context(|| format!("cannot migrate database {}", db_path.display()))?;

        crate::ops::jobs::interrupt_stale(&db)
            .await
            .context("cannot mark unfinished jobs as interrupted")?;
        let search = Search::open(data_dir.root(), &config.search, db.clone())
            .await
            .context("cannot open the search index")?;

        let addr = config.server.listen;
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}; set server.listen (or --listen) to a free address")
        })?;
        let local_addr = listener.local_addr()?;
        // Install the recorder before anything records.
        crate::telemetry::metrics_handle();
        let metrics_listener = if config.metrics.enabled {
            let addr = config.metrics.listen;
            Some(TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen for metrics on {addr}; set metrics.listen to a free address or metrics.enabled = false")
            })?)
        } else {
            None
        };
        let rate_limit = config.rate_limit.clone();
        let (errors, error_rx) =
            crate::telemetry::errors::Tracker::new(crate::telemetry::errors::QUEUE_CAPACITY);
        let (alerts, webhook_rx) = crate::ops::alerts::Alerts::new(&config.alerts);
        Ok(App {
            state: AppState::new(crate::state::Parts {
                config,
                data_dir,
                db,
                search: Arc::new(search),
                backups: Default::default(),
                jobs: Default::default(),
                started_at,
                in_flight: InFlightRequestsCounter::default(),
                last_readiness: std::sync::Mutex::new(None),
                limiters: crate::http::limits::Limiters::new(&rate_limit),
                errors,
                alerts,
                setup_token: Default::default(),
                argon2: tokio::sync::Semaphore::new(2),
                history: crate::ops::history::History::starting_at(crate::http::unix_now()),
                tokens: Default::default(),
                restart: Default::default(),
            }),
            listener,
            metrics_listener,
            local_addr,
            migrate_report,
            lock,
            error_rx,
            webhook_rx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// Where `GET /metrics` is served, when metrics are enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }
    pub fn state(&self) -> &AppState {
        &self.state
    }
    /// What the start-up migration step did.
    pub fn migrate_report(&self) -> &MigrateReport {
        &self.migrate_report
    }

    /// Serve until `shutdown` completes, then drain in-flight requests for at most
    /// `server.shutdown_grace_secs`, stop background tasks, checkpoint and truncate the
    /// WAL, and release the data-directory lock.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            state,
            listener,
            metrics_listener,
            local_addr,
            lock,
            error_rx,
            webhook_rx,
            ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let checkpointer = state.db().spawn_checkpointer(stop_rx.clone());
        let auth_recheck = state.db().spawn_auth_recheck(stop_rx.clone());
        let error_writer =
            crate::db::errors::spawn_writer(state.db().clone(), error_rx, stop_rx.clone());
        let indexer = crate::search::indexer::spawn(
            state.search().clone(),
            state.errors().clone(),
            stop_rx.clone(),
        );
        let scheduler = crate::ops::backups::spawn_scheduler(state.clone(), stop_rx.clone());
        let cleaner = crate::ops::cleanup::spawn_scheduler(state.clone(), stop_rx.clone());
        let alerter = crate::ops::alerts::spawn(state.clone(), stop_rx.clone());
        let webhook = webhook_rx
            .map(|rx| crate::ops::alerts::spawn_webhook(state.clone(), rx, stop_rx.clone()));

        let router = crate::http::router(state.clone());
        let mut drain_rx = stop_rx.clone();
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stopped(&mut drain_rx).await;
        });
        let mut server = tokio::spawn(async move { server.await });
        let metrics_server = metrics_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(metrics_address = %addr, "metrics on http://{addr}/metrics");
            }
            let mut stop = stop_rx.clone();
            let app = crate::ops::metrics::router(state.clone());
            tokio::spawn(async move {
                let served = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        stopped(&mut stop).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        tracing::info!(address = %local_addr, version = crate::VERSION, "listening on http://{local_addr}");
        offer_setup(&state, local_addr).await;
        // Migrations ran, the index is open, the listener is bound: tell systemd.
        crate::ops::watchdog::ready(&format!("ready on http://{local_addr}"));
        // After a clean stop the whole-file check was left for now (db::clean_stop).
        state.db().spawn_deferred_check();
        let watchdog = crate::ops::watchdog::spawn(state.clone(), stop_rx.clone());

        let grace = Duration::from_secs(state.config().server.shutdown_grace_secs);
        let restarting = state.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = restarting.restart().asked() => {}
            }
        };
        let served = tokio::select! {
            res = &mut server => res,
            () = shutdown => {
                if state.restart().was_asked() {
                    crate::ops::watchdog::reloading();
                } else {
                    crate::ops::watchdog::stopping();
                }
                tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections, draining in-flight requests");
                let _ = stop_tx.send(true);
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(res) => res,
                    Err(_) => {
                        tracing::warn!("drain deadline passed; cutting the remaining requests");
                        server.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        if let Some(w) = watchdog
            && let Err(e) = w.await
        {
            tracing::warn!(error = %e, "watchdog task ended abnormally");
        }
        if let Err(e) = indexer.await {
            tracing::warn!(error = %e, "indexer task ended abnormally");
        }
        if let Some(mut s) = scheduler {
            // A scheduled backup in progress may finish within the grace period; past it,
            // it is abandoned with the process: its temporary file never becomes an
            // archive, and the next backup removes it.
            if tokio::time::timeout(grace, &mut s).await.is_err() {
                tracing::warn!("a scheduled backup was still running at shutdown; abandoned");
                s.abort();
                let _ = s.await;
            }
        }
        for (name, task) in [
            ("cleanup", cleaner),
            ("alerts", alerter),
            ("webhook", webhook),
        ] {
            if let Some(t) = task
                && let Err(e) = t.await
            {
                tracing::warn!(error = %e, task = name, "background task ended abnormally");
            }
        }
        // Errors recorded up to here are stored before the database closes.
        if let Err(e) = error_writer.await {
            tracing::warn!(error = %e, "error writer task ended abnormally");
        }
        if let Err(e) = checkpointer.await {
            tracing::warn!(error = %e, "checkpoint task ended abnormally");
        }
        if let Err(e) = auth_recheck.await {
            tracing::warn!(error = %e, "token-change check ended abnormally");
        }
        // The final checkpoint runs even when serving failed, so the database file is whole.
        let closed = state.db().close().await;
        // Close every connection before another process may take the directory.
        drop(state);
        drop(lock);
        match closed {
            Ok(()) => tracing::info!("database checkpointed; stopped cleanly"),
            Err(e) => tracing::error!(error = %e, "final checkpoint failed"),
        }
        served
            .context("server task failed")?
            .context("server failed")?;
        Ok(())
    }
}

/// While no user exists, log a one-time token that lets the first admin be created
/// through the API or the UI (valid until used or the process ends).
async fn offer_setup(state: &AppState, addr: SocketAddr) {
    match state.db().read(crate::db::users::count).await {
        Ok(0) => {
            let token = state.setup_token().issue();
            let base = if state.config().security.public_url.is_empty() {
                format!("http://{addr}")
            } else {
                state.config().security.public_url.clone()
            };
            tracing::warn!(
                setup_token = %token,
                "no users yet: open {base}/admin/ and use setup token {token}, or run `appliance user create --email YOU --role admin`; the token works once, until restart"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot count users"),
    }
}
