//! Observability: `[log]`, `[sentry]`, `[metrics]` and `[alerts]` (rules and the webhook).

use std::net::SocketAddr;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;
use super::{ConfigError, in_ranges};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter (`info`, `appliance=debug,tower_http=info`); `RUST_LOG` wins.
    pub level: String,
    /// `text` for people, `json` for log shippers (one object per line).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentryConfig {
    /// Sentry DSN; errors are reported only when this (or `dsn_file`) is set.
    pub dsn: Option<Secret>,
    /// File holding the DSN (relative names are looked up in systemd's
    /// `$CREDENTIALS_DIRECTORY`, so `LoadCredential=` works).
    pub dsn_file: Option<PathBuf>,
    /// Sentry `environment` tag.
    pub environment: String,
    /// Fraction of error events sent, 0.0 to 1.0.
    pub sample_rate: f32,
}

impl Default for SentryConfig {
    fn default() -> Self {
        SentryConfig {
            dsn: None,
            dsn_file: None,
            environment: "production".into(),
            sample_rate: 1.0,
        }
    }
}

/// The Prometheus endpoint (its own listener, so the API port never exposes it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// Where: loopback by default (Prometheus on the same host, or a tunnel).
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
        }
    }
}

/// Alert rules over what the appliance measures, and the optional webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Evaluate the rules at all.
    pub enabled: bool,
    /// How often the rules are evaluated (milliseconds).
    pub interval_ms: u64,
    /// Fires above this many unexpected errors in the last minute.
    pub error_rate_per_minute: f64,
    /// Fires when the p99 request latency of the last minute is above this (ms).
    pub p99_latency_ms: f64,
    /// Fires when the data directory's disk is fuller than this (percent).
    pub disk_used_percent: f64,
    /// Fires when resident memory is above this share of the unit's memory limit (its
    /// cgroup `memory.max`), or of the machine's memory when there is none (percent).
    pub memory_percent: f64,
    /// Fires when the oldest change waiting for the search index is older (seconds).
    pub index_lag_secs: u64,
    /// POST every firing and resolution here as JSON (a secret: it may hold a token).
    pub webhook_url: Option<Secret>,
    /// File holding the webhook URL (relative names are looked up in
    /// `$CREDENTIALS_DIRECTORY`).
    pub webhook_url_file: Option<PathBuf>,
    /// One delivery attempt gives up after this long (milliseconds).
    pub webhook_timeout_ms: u64,
    /// Attempts per transition before it is given up.
    pub webhook_max_attempts: u32,
    /// First retry delay; it doubles per attempt (with full jitter, at most 60 s).
    pub webhook_backoff_ms: u64,
    /// This many failed attempts in a row open the circuit breaker...
    pub breaker_failures: u32,
    /// ...for this long (seconds); then one attempt decides whether it closes.
    pub breaker_open_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            interval_ms: 15_000,
            error_rate_per_minute: 10.0,
            p99_latency_ms: 1000.0,
            disk_used_percent: 85.0,
            memory_percent: 80.0,
            index_lag_secs: 60,
            webhook_url: None,
            webhook_url_file: None,
            webhook_timeout_ms: 5000,
            webhook_max_attempts: 8,
            webhook_backoff_ms: 500,
            breaker_failures: 5,
            breaker_open_secs: 60,
        }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return Err(ConfigError::invalid(
                "log.level",
                format!("{:?}", self.level),
                &format!("not a tracing filter ({e}); use e.g. info, debug, appliance=debug"),
            ));
        }
        Ok(())
    }
}

impl SentryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(dsn) = &self.dsn
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            return Err(ConfigError::invalid(
                "sentry.dsn",
                "[redacted]",
                "not a Sentry DSN (https://KEY@HOST/PROJECT)",
            ));
        }
        in_ranges::<f32>("sentry", &[("sample_rate", self.sample_rate, 0.0..=1.0)])?;
        Ok(())
    }
}

impl AlertsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.webhook_url {
            let u = url.expose();
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.parse::<axum::http::Uri>().is_err()
            {
                return Err(ConfigError::invalid(
                    "alerts.webhook_url",
                    "[redacted]",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        in_ranges::<u64>(
            "alerts",
            &[
                ("interval_ms", self.interval_ms, 100..=3_600_000),
                ("webhook_timeout_ms", self.webhook_timeout_ms, 100..=300_000),
            ],
        )?;
        in_ranges::<u32>(
            "alerts",
            &[("webhook_max_attempts", self.webhook_max_attempts, 1..=100)],
        )?;
        if self.breaker_failures == 0 {
            return Err(ConfigError::invalid(
                "alerts.breaker_failures",
                0,
                "must be at least 1",
            ));
        }
        in_ranges::<f64>(
            "alerts",
            &[
                ("disk_used_percent", self.disk_used_percent, 0.0..=100.0),
                ("memory_percent", self.memory_percent, 0.0..=100.0),
            ],
        )?;
        Ok(())
    }
}
