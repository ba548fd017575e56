//! Logging and error reporting: the tracing subscriber (text or JSON lines on stderr,
//! filter from `RUST_LOG` or `log.level`) and the Sentry client (only when a DSN is
//! configured, never with personal data). Metrics join here with the Operations work.

use anyhow::Context;
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    // No IP addresses, cookies or user data on events.
    options.send_default_pii = false;
    let guard = sentry::init((dsn.expose(), options));
    tracing::info!(environment = %config.environment, "error reporting to Sentry enabled");
    Some(guard)
}
