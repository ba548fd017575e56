//! Logging, metrics and error reporting: the tracing subscriber (text or JSON lines on
//! stderr, filter from `RUST_LOG` or `log.level`), the process-wide Prometheus recorder
//! behind the `metrics` macros (rendered by `ops::metrics`), and the Sentry client (only
//! when a DSN is configured, never with personal data).

pub mod errors;
pub mod scrub;

use std::sync::OnceLock;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat, SentryConfig};

/// Install the global subscriber. `default_filter` is used when neither `RUST_LOG` nor
/// `log.level` is meant to apply (the non-serve CLI commands pass `warn`).
pub fn init_tracing(config: &LogConfig, default_filter: Option<&str>) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).with_context(|| format!("RUST_LOG={v:?} is not a filter"))?
        }
        _ => EnvFilter::try_new(default_filter.unwrap_or(&config.level))
            .with_context(|| format!("log.level={:?} is not a filter", config.level))?,
    };
    // Colour codes only for a person at a terminal: under systemd stderr is the journal,
    // where escape sequences would show up as text in every line.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A second init in one process (tests) keeps the first subscriber.
    if let Err(e) = result {
        tracing::debug!("tracing already initialised: {e}");
    }
    Ok(())
}

/// Start the Sentry client when a DSN is configured. Keep the guard alive for the life of
/// the process: dropping it flushes pending events.
pub fn init_sentry(config: &SentryConfig) -> Option<sentry::ClientInitGuard> {
    let dsn = config.dsn.as_ref()?;
    let mut options = sentry::ClientOptions::default()
        .environment(config.environment.clone())
        .sample_rate(config.sample_rate);
    options.release = Some(format!("appliance@{}", crate::VERSION).into());
    // No IP addresses, cookies or user data on events; messages and exception values
    // (panics included) pass the same scrubber as stored errors.
    options.send_default_pii = false;
    options.before_send = Some(std::sync::Arc::new(|mut event| {
        use scrub::scrub;
        event.message = event.message.as_deref().map(scrub);
        for exc in &mut event.exception.values {
            exc.value = exc.value.as_deref().map(scrub);
        }
        event.user = None;
        event.request = None;
        event.breadcrumbs.values.clear();
        Some(event)
    }));
    let guard = sentry::init((dsn.expose(), options));
    tracing::info!(environment = %config.environment, "error reporting to Sentry enabled");
    Some(guard)
}

/// Histogram buckets in seconds: 0.5 ms (a cached read) to 10 s (a stuck request).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide metrics recorder, installed on first use (None only if another
/// recorder was installed first). Tests build several apps in one process: they share it.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match handle {
                Ok(h) => {
                    describe_metrics();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "appliance_http_requests_total",
        "HTTP requests by method, matched route and status class"
    );
    describe_histogram!(
        "appliance_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request duration by method, matched route and status class"
    );
    describe_counter!(
        "appliance_http_rate_limited_total",
        "Requests answered 429 (rate limited)"
    );
    describe_gauge!(
        "appliance_http_requests_in_flight",
        "HTTP requests being handled"
    );
    describe_histogram!(
        "appliance_db_write_wait_seconds",
        Unit::Seconds,
        "Time a write waited for the writer thread"
    );
    describe_histogram!(
        "appliance_db_write_transaction_seconds",
        Unit::Seconds,
        "Duration of one write transaction (a group of writes, BEGIN to COMMIT)"
    );
    describe_gauge!("appliance_db_readers", "Reader connections in the pool");
    describe_gauge!("appliance_db_readers_in_use", "Reader connections in use");
    describe_gauge!(
        "appliance_db_size_bytes",
        Unit::Bytes,
        "Size of the SQLite database file"
    );
    describe_gauge!(
        "appliance_db_wal_size_bytes",
        Unit::Bytes,
        "Size of the SQLite write-ahead log"
    );
    describe_gauge!(
        "appliance_search_documents",
        "Documents in the search index"
    );
    describe_gauge!(
        "appliance_search_outbox_pending",
        "Article changes waiting to be indexed"
    );
    describe_gauge!(
        "appliance_search_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest change waiting to be indexed"
    );
    describe_histogram!(
        "appliance_search_commit_seconds",
        Unit::Seconds,
        "Duration of an index commit"
    );
    describe_gauge!(
        "appliance_backup_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful backup"
    );
    describe_gauge!(
        "appliance_backup_last_duration_seconds",
        Unit::Seconds,
        "Duration of the last successful backup"
    );
    describe_gauge!(
        "appliance_backup_last_size_bytes",
        Unit::Bytes,
        "Archive size of the last successful backup"
    );
    describe_gauge!(
        "appliance_backup_last_run_ok",
        "1 when the last backup attempt succeeded, 0 when it failed"
    );
    describe_counter!(
        "appliance_errors_total",
        "Unexpected errors by category and severity"
    );
    describe_counter!(
        "appliance_error_events_dropped_total",
        "Error events dropped because the recording queue was full"
    );
    describe_gauge!(
        "appliance_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the process"
    );
    describe_gauge!(
        "appliance_process_open_fds",
        "Open file descriptors of the process"
    );
    describe_gauge!(
        "appliance_disk_free_bytes",
        Unit::Bytes,
        "Free space in the data directory"
    );
    describe_gauge!(
        "appliance_uptime_seconds",
        Unit::Seconds,
        "Seconds since the server started"
    );
    describe_gauge!("appliance_build_info", "Always 1; the version is a label");
}
