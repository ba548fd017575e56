//! Configuration: embedded defaults, then a TOML file, then `APPLIANCE__SECTION__KEY`
//! environment variables, then command-line flags (each layer wins over the one before).
//!
//! Unknown keys and bad values are rejected with a message naming the key, the value and
//! what is allowed. Secrets are wrapped in [`Secret`] so that neither `Debug` nor
//! `config print` can leak them. Nothing here opens the database or binds sockets.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where `serve` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/appliance/appliance.toml";
/// Prefix of environment overrides: `APPLIANCE__SERVER__LISTEN=…`.
pub const ENV_PREFIX: &str = "APPLIANCE__";

/// The effective configuration of one process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the database, the index, backups and the lock file.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub health: HealthConfig,
    pub articles: ArticlesConfig,
    pub search: SearchConfig,
    pub backup: BackupConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub sentry: SentryConfig,
    pub security: SecurityConfig,
    pub rate_limit: RateLimitConfig,
    pub cleanup: CleanupConfig,
    pub alerts: AlertsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP listener (`HOST:PORT`; port 0 picks a free port).
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: u64,
    /// A request still running after this many seconds is answered with 408.
    pub request_timeout_secs: u64,
    /// On SIGTERM, how long in-flight requests may take to finish before they are cut.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Durable at every checkpoint; a power cut may lose the last commits (never corrupts).
    Normal,
    /// Every commit is fsynced.
    Full,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `PRAGMA synchronous` of the writer.
    pub synchronous: Synchronous,
    /// Size of the read-only connection pool.
    pub readers: u32,
    /// `PRAGMA busy_timeout` of every connection, in milliseconds.
    pub busy_timeout_ms: u64,
    /// How long a write waits for the single writer connection before answering 503.
    pub write_timeout_ms: u64,
    /// `PRAGMA mmap_size` of the reader connections (bytes). Without it the bundled
    /// SQLite's shared page-cache lock keeps two readers no faster than one (DESIGN.md).
    pub mmap_size_bytes: u64,
    /// `PRAGMA cache_size` of the writer connection (bytes): its page cache for the
    /// B-tree pages that inserts and updates touch.
    pub writer_cache_bytes: u64,
    /// `PRAGMA journal_size_limit`: the WAL file is truncated to this size after a reset.
    pub journal_size_limit_bytes: u64,
    /// Interval of the background WAL checkpoint (SQLite's automatic checkpoint inside
    /// a writer's commit is switched off).
    pub checkpoint_interval_ms: u64,
    /// Apply pending migrations when `serve` starts; when false, `serve` refuses to
    /// start until `appliance migrate run` was run.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// `/readyz` reports `failing` when free space in the data dir is below this.
    pub min_free_disk_bytes: u64,
    /// `/readyz` reports `degraded` when free space is below this.
    pub warn_free_disk_bytes: u64,
    /// Each deep check gives up (and fails) after this long.
    pub check_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArticlesConfig {
    /// Largest article body, in bytes (UTF-8).
    pub body_max_bytes: u64,
    /// Most articles in one `POST /api/articles/bulk` request.
    pub bulk_max_items: u32,
    /// Largest body of a bulk request, in bytes (the general limit does not apply there).
    pub bulk_body_limit_bytes: u64,
    /// Largest page of `GET /api/articles`.
    pub list_max_limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Analyzer {
    /// Lowercasing and English stemming ("running" finds "run").
    English,
    /// Lowercasing only.
    Simple,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Text analysis of title and body; changing it rebuilds the index at next start.
    pub analyzer: Analyzer,
    /// The index commits at most this often; a write is searchable within about this long.
    pub commit_interval_ms: u64,
    /// Outbox rows applied per index batch.
    pub batch_size: u32,
    /// Memory for tantivy's indexing buffers, in bytes.
    pub writer_memory_bytes: u64,
    /// Bad query syntax is a 400 saying where (true), or falls back to plain words (false).
    /// A request can choose with `strict=true|false`.
    pub strict_syntax: bool,
    /// Largest `limit` of `GET /api/search`.
    pub max_limit: u32,
    /// `/readyz` reports the index degraded when the oldest unindexed write is older.
    pub max_lag_secs: u64,
}

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

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            health: HealthConfig::default(),
            articles: ArticlesConfig::default(),
            search: SearchConfig::default(),
            backup: BackupConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            sentry: SentryConfig::default(),
            security: SecurityConfig::default(),
            rate_limit: RateLimitConfig::default(),
            cleanup: CleanupConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // 2 MiB: an article body may be 1 MiB, plus JSON escaping and metadata.
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            synchronous: Synchronous::Normal,
            readers: 4,
            busy_timeout_ms: 5000,
            write_timeout_ms: 5000,
            mmap_size_bytes: 256 * 1024 * 1024,
            writer_cache_bytes: 8 * 1024 * 1024,
            journal_size_limit_bytes: 64 * 1024 * 1024,
            checkpoint_interval_ms: 1000,
            migrate_on_start: true,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            min_free_disk_bytes: 256 * 1024 * 1024,
            warn_free_disk_bytes: 1024 * 1024 * 1024,
            check_timeout_ms: 2000,
        }
    }
}

impl Default for ArticlesConfig {
    fn default() -> Self {
        ArticlesConfig {
            body_max_bytes: 1024 * 1024,
            bulk_max_items: 1000,
            bulk_body_limit_bytes: 64 * 1024 * 1024,
            list_max_limit: 200,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            analyzer: Analyzer::English,
            commit_interval_ms: 500,
            batch_size: 5000,
            writer_memory_bytes: 64 * 1024 * 1024,
            strict_syntax: false,
            max_limit: 100,
            max_lag_secs: 60,
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

/// Snapshots of the database and the index (see `backup/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where archives go; empty means `<data_dir>/backups`. May be another disk.
    pub dir: PathBuf,
    /// When `serve` takes a backup: a cron expression in UTC (5 fields, or 6 with
    /// seconds first); empty turns the scheduler off.
    pub schedule: String,
    /// Retention, applied after every successful backup: the newest N archives...
    pub keep_last: u32,
    /// ...plus the newest archive of each of the last D days that have one...
    pub keep_daily: u32,
    /// ...plus the newest archive of each of the last W ISO weeks that have one.
    pub keep_weekly: u32,
    /// `/readyz` says degraded when the last good backup is older than this (0: never).
    pub max_age_hours: u64,
    /// zstd level of archives: 1 (fast, the default) .. 19 (smallest); -1 .. -7 are
    /// zstd's `--fast` levels (faster still, larger archives).
    pub compression_level: i32,
    /// Free space kept on the backups disk on top of the expected archive size.
    pub min_free_margin_bytes: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: PathBuf::new(),
            // Daily at 03:17 UTC: a quiet hour, off the top of the hour when other jobs run.
            schedule: "17 3 * * *".into(),
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            max_age_hours: 26,
            // Measured on 410 MiB of articles (README, Performance): level 1 writes
            // 440 MiB/s for a 32% archive, level 3 207 MiB/s for 24%.
            compression_level: 1,
            min_free_margin_bytes: 64 * 1024 * 1024,
        }
    }
}

pub use crate::schedule::parse_cron;

impl BackupConfig {
    /// The parsed schedule, or None when the scheduler is off.
    pub fn cron(&self) -> Result<Option<croner::Cron>, String> {
        parse_cron(&self.schedule)
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Sign-in, sessions, access and response hardening (README, "Security").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Anonymous callers may list, read and search published articles; when false
    /// every route but `/health`, `/readyz` and sign-in needs credentials.
    pub public_read: bool,
    /// A TLS-terminating reverse proxy is in front: the session cookie gets `Secure`
    /// and responses carry `Strict-Transport-Security`.
    pub behind_tls_proxy: bool,
    /// Peers whose `X-Forwarded-For` is believed for the client address (rate limits,
    /// audit log): the IP addresses of your reverse proxies. Empty: the peer address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to call the API from a browser (`https://app.example.org`);
    /// empty turns CORS off. Cookies stay SameSite=Strict: such callers use API tokens.
    pub cors_origins: Vec<String>,
    /// Where people reach the appliance, for links the CLI prints (password reset);
    /// empty: `http://<server.listen>`.
    pub public_url: String,
    /// A session unused for this long ends.
    pub session_idle_timeout_mins: u64,
    /// A session ends this long after sign-in, however busy.
    pub session_absolute_timeout_hours: u64,
    /// How long a password-reset (or set-password) link works.
    pub reset_link_ttl_hours: u64,
    /// Deepest nesting of arrays/objects accepted in a JSON request body.
    pub json_max_depth: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            public_read: true,
            behind_tls_proxy: false,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            public_url: String::new(),
            // OWASP Session Management Cheat Sheet: idle timeouts of hours for low-risk
            // applications; a working day idle, a week absolute.
            session_idle_timeout_mins: 8 * 60,
            session_absolute_timeout_hours: 7 * 24,
            reset_link_ttl_hours: 24,
            // Articles are flat objects; 32 leaves room and keeps parsers shallow.
            json_max_depth: 32,
        }
    }
}

impl SecurityConfig {
    /// `session_idle_timeout_mins` as a duration (validated to fit).
    pub fn session_idle(&self) -> time::Duration {
        time::Duration::minutes(
            i64::try_from(self.session_idle_timeout_mins).unwrap_or(i64::MAX / 60),
        )
    }
    /// `session_absolute_timeout_hours` as a duration.
    pub fn session_absolute(&self) -> time::Duration {
        time::Duration::hours(i64::try_from(self.session_absolute_timeout_hours).unwrap_or(24))
    }
    /// `reset_link_ttl_hours` as a duration.
    pub fn reset_link_ttl(&self) -> time::Duration {
        time::Duration::hours(i64::try_from(self.reset_link_ttl_hours).unwrap_or(24))
    }
}

impl Config {
    /// The address people reach the appliance at, for links: `security.public_url`, else
    /// the host a request came to, else `http://<server.listen>`.
    pub fn public_base_url(&self, request_host: Option<&str>) -> String {
        if !self.security.public_url.is_empty() {
            return self.security.public_url.clone();
        }
        match request_host {
            Some(h) => format!("http://{h}"),
            None => format!("http://{}", self.server.listen),
        }
    }
}

/// Per-client-IP request rate limits (answered with 429 and `Retry-After`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sign-in, first-admin setup and password reset: attempts per 15 minutes per IP,
    /// and sign-in attempts per 15 minutes per account (then it is locked out until
    /// the window refills; the lockout is logged and audited).
    pub login_per_15_min: u32,
    /// Search, bulk ingest, backup trigger, index rebuild and verify: per IP per minute...
    pub expensive_per_minute: u32,
    /// ...with bursts of up to this many.
    pub expensive_burst: u32,
    /// Every other route: per IP per second...
    pub general_per_second: u32,
    /// ...with bursts of up to this many.
    pub general_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            // The "about 10 per 15 minutes": slow enough to make online
            // guessing hopeless, loose enough for a few typos.
            login_per_15_min: 10,
            expensive_per_minute: 1200,
            expensive_burst: 100,
            general_per_second: 200,
            general_burst: 400,
        }
    }
}

/// Housekeeping (`appliance cleanup`, and its safe part on a schedule in `serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// When `serve` removes expired sessions, old tokens, reset links, audit entries and
    /// error groups and runs `PRAGMA optimize`: cron in UTC; empty turns it off.
    pub schedule: String,
    /// Soft-deleted articles are purged for good (by `cleanup --apply`) after this long.
    pub deleted_retention_days: u32,
    /// API tokens expired or revoked longer ago than this are removed.
    pub token_retention_days: u32,
    /// Audit entries older than this are removed.
    pub audit_retention_days: u32,
    /// Error groups not seen for this long are removed.
    pub error_retention_days: u32,
    /// `cleanup --apply` runs VACUUM when at least this fraction of pages is free...
    pub vacuum_min_free_ratio: f64,
    /// ...and they add up to at least this many bytes.
    pub vacuum_min_free_bytes: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            // Daily, an hour after the default backup (03:17) so a backup holds what goes.
            schedule: "43 4 * * *".into(),
            deleted_retention_days: 30,
            token_retention_days: 30,
            // A year of security events: enough to answer "who did that last spring".
            audit_retention_days: 365,
            error_retention_days: 90,
            vacuum_min_free_ratio: 0.25,
            vacuum_min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

impl CleanupConfig {
    /// The parsed schedule, or None when it is off.
    pub fn cron(&self) -> Result<Option<croner::Cron>, String> {
        parse_cron(&self.schedule)
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

/// A secret string: `Debug`, `Display` and `Serialize` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Fill a secret from its `*_file` key, or from the systemd credential named
/// `credential` when neither is set (`LoadCredential=sentry.dsn:/path` needs no key).
/// A relative file name is looked up in `$CREDENTIALS_DIRECTORY`.
fn resolve_secret(
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    credential: &str,
) -> Result<(), ConfigError> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    if value.is_none()
        && file.is_none()
        && credentials
            .as_ref()
            .is_some_and(|d| d.join(credential).is_file())
    {
        *file = Some(PathBuf::from(credential));
    }
    if let Some(name) = file {
        let path = match &credentials {
            Some(dir) if name.is_relative() => dir.join(&*name),
            _ => name.clone(),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Unreadable {
            path: path.clone(),
            source,
        })?;
        *value = Some(Secret::new(text.trim()));
    }
    Ok(())
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(d)?;
    raw.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{raw}` is not an address: expected IP:PORT such as 127.0.0.1:8080 or [::1]:8080"
        ))
    })
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerOverrides>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ServerOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// Where the effective configuration came from, for `config check` and the start log.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env_keys: Vec<String>,
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("embedded defaults")?;
        if let Some(file) = &self.file {
            write!(f, ", file {}", file.display())?;
        }
        if !self.env_keys.is_empty() {
            write!(f, ", environment ({})", self.env_keys.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} cannot be read")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigError {
    fn invalid(key: &str, value: impl fmt::Display, allowed: &str) -> Self {
        ConfigError::Invalid(format!("`{key}` = {value}: {allowed}"))
    }
}

impl Config {
    /// Load the configuration the way the CLI does: `file` if given (it must exist),
    /// else [`DEFAULT_CONFIG_PATH`] if present; then the process environment; then
    /// `overrides`. The result is validated and secret files are read.
    pub fn load(
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<(Config, Sources), ConfigError> {
        let file = match file {
            Some(path) => {
                // Toml::file silently skips a missing file; an explicit path must exist.
                std::fs::metadata(path).map_err(|source| ConfigError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                })?;
                Some(path.to_path_buf())
            }
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            // Open it ourselves so that an unreadable file is an error, not a default.
            std::fs::File::open(path).map_err(|source| ConfigError::Unreadable {
                path: path.clone(),
                source,
            })?;
            // file_exact: never search parent directories for a file of that name.
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed(ENV_PREFIX).split("__");
        let env_keys = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(ENV_PREFIX))
            .collect();
        figment = figment.merge(env).merge(Serialized::defaults(overrides));
        let mut config: Config = figment.extract().map_err(describe_figment_error)?;
        config.resolve_secret_files()?;
        config.validate()?;
        Ok((config, Sources { file, env_keys }))
    }

    /// Parse a TOML document on top of the defaults (no environment): for tests and
    /// tools that build a config in code.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        resolve_secret(
            &mut self.sentry.dsn,
            &mut self.sentry.dsn_file,
            "sentry.dsn",
        )?;
        resolve_secret(
            &mut self.alerts.webhook_url,
            &mut self.alerts.webhook_url_file,
            "alerts.webhook_url",
        )
    }

    /// Checks that serde cannot express: ranges, relations between keys, syntax of
    /// filters and DSNs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "data_dir",
                "\"\"",
                "must name a directory",
            ));
        }
        let s = &self.server;
        if !(1024..=1024 * 1024 * 1024).contains(&s.body_limit_bytes) {
            return Err(ConfigError::invalid(
                "server.body_limit_bytes",
                s.body_limit_bytes,
                "must be between 1024 and 1073741824",
            ));
        }
        if !(1..=3600).contains(&s.request_timeout_secs) {
            return Err(ConfigError::invalid(
                "server.request_timeout_secs",
                s.request_timeout_secs,
                "must be between 1 and 3600",
            ));
        }
        if s.shutdown_grace_secs > 600 {
            return Err(ConfigError::invalid(
                "server.shutdown_grace_secs",
                s.shutdown_grace_secs,
                "must be between 0 and 600",
            ));
        }
        let d = &self.database;
        if !(1..=64).contains(&d.readers) {
            return Err(ConfigError::invalid(
                "database.readers",
                d.readers,
                "must be between 1 and 64",
            ));
        }
        if !(1024 * 1024..=16 * 1024 * 1024 * 1024).contains(&d.writer_cache_bytes) {
            return Err(ConfigError::invalid(
                "database.writer_cache_bytes",
                d.writer_cache_bytes,
                "must be between 1 MiB (1048576) and 16 GiB",
            ));
        }
        for (key, value) in [
            ("database.busy_timeout_ms", d.busy_timeout_ms),
            ("database.write_timeout_ms", d.write_timeout_ms),
            ("database.checkpoint_interval_ms", d.checkpoint_interval_ms),
            ("health.check_timeout_ms", self.health.check_timeout_ms),
        ] {
            if !(1..=600_000).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be between 1 and 600000 (milliseconds)",
                ));
            }
        }
        let a = &self.articles;
        if !(1..=64 * 1024 * 1024).contains(&a.body_max_bytes) {
            return Err(ConfigError::invalid(
                "articles.body_max_bytes",
                a.body_max_bytes,
                "must be between 1 and 67108864",
            ));
        }
        if !(1..=100_000).contains(&a.bulk_max_items) {
            return Err(ConfigError::invalid(
                "articles.bulk_max_items",
                a.bulk_max_items,
                "must be between 1 and 100000",
            ));
        }
        if !(1024..=4 * 1024 * 1024 * 1024).contains(&a.bulk_body_limit_bytes) {
            return Err(ConfigError::invalid(
                "articles.bulk_body_limit_bytes",
                a.bulk_body_limit_bytes,
                "must be between 1024 and 4294967296",
            ));
        }
        if !(1..=10_000).contains(&a.list_max_limit) {
            return Err(ConfigError::invalid(
                "articles.list_max_limit",
                a.list_max_limit,
                "must be between 1 and 10000",
            ));
        }
        let q = &self.search;
        if !(10..=60_000).contains(&q.commit_interval_ms) {
            return Err(ConfigError::invalid(
                "search.commit_interval_ms",
                q.commit_interval_ms,
                "must be between 10 and 60000",
            ));
        }
        if !(1..=1_000_000).contains(&q.batch_size) {
            return Err(ConfigError::invalid(
                "search.batch_size",
                q.batch_size,
                "must be between 1 and 1000000",
            ));
        }
        // tantivy refuses less than 15 MB per indexing thread.
        if !(32 * 1024 * 1024..=4 * 1024 * 1024 * 1024).contains(&q.writer_memory_bytes) {
            return Err(ConfigError::invalid(
                "search.writer_memory_bytes",
                q.writer_memory_bytes,
                "must be between 33554432 (32 MiB) and 4294967296",
            ));
        }
        if !(1..=1000).contains(&q.max_limit) {
            return Err(ConfigError::invalid(
                "search.max_limit",
                q.max_limit,
                "must be between 1 and 1000",
            ));
        }
        if q.max_lag_secs == 0 {
            return Err(ConfigError::invalid(
                "search.max_lag_secs",
                0,
                "must be at least 1",
            ));
        }
        let b = &self.backup;
        if let Err(e) = b.cron() {
            return Err(ConfigError::invalid(
                "backup.schedule",
                format!("{:?}", b.schedule),
                &format!(
                    "not a cron expression ({e}); e.g. \"17 3 * * *\" for daily at 03:17 UTC, or \"\" for no schedule"
                ),
            ));
        }
        if !(-7..=19).contains(&b.compression_level) || b.compression_level == 0 {
            return Err(ConfigError::invalid(
                "backup.compression_level",
                b.compression_level,
                "must be 1 (fast) .. 19 (small), or -1 .. -7 (zstd --fast levels)",
            ));
        }
        if b.keep_last == 0 {
            return Err(ConfigError::invalid(
                "backup.keep_last",
                0,
                "must be at least 1 (the newest backup is always kept)",
            ));
        }
        if self.health.warn_free_disk_bytes < self.health.min_free_disk_bytes {
            return Err(ConfigError::invalid(
                "health.warn_free_disk_bytes",
                self.health.warn_free_disk_bytes,
                "must be at least health.min_free_disk_bytes",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::invalid(
                "log.level",
                format!("{:?}", self.log.level),
                &format!("not a tracing filter ({e}); use e.g. info, debug, appliance=debug"),
            ));
        }
        if let Some(dsn) = &self.sentry.dsn
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            return Err(ConfigError::invalid(
                "sentry.dsn",
                "[redacted]",
                "not a Sentry DSN (https://KEY@HOST/PROJECT)",
            ));
        }
        let sec = &self.security;
        for origin in &sec.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(ConfigError::invalid(
                    "security.cors_origins",
                    format!("\"{origin}\""),
                    "each must be an origin such as https://app.example.org (scheme and host, no path)",
                ));
            }
        }
        if !(sec.public_url.is_empty()
            || sec.public_url.starts_with("http://")
            || sec.public_url.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "security.public_url",
                format!("\"{}\"", sec.public_url),
                "must be empty or start with http:// or https://",
            ));
        }
        for (key, value) in [
            (
                "security.session_idle_timeout_mins",
                sec.session_idle_timeout_mins,
            ),
            (
                "security.session_absolute_timeout_hours",
                sec.session_absolute_timeout_hours,
            ),
            ("security.reset_link_ttl_hours", sec.reset_link_ttl_hours),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be between 1 and 100000",
                ));
            }
        }
        if !(2..=512).contains(&sec.json_max_depth) {
            return Err(ConfigError::invalid(
                "security.json_max_depth",
                sec.json_max_depth,
                "must be between 2 and 512",
            ));
        }
        let cl = &self.cleanup;
        if let Err(e) = cl.cron() {
            return Err(ConfigError::invalid(
                "cleanup.schedule",
                format!("\"{}\"", cl.schedule),
                &format!("not a cron expression ({e})"),
            ));
        }
        for (key, value) in [
            ("cleanup.deleted_retention_days", cl.deleted_retention_days),
            ("cleanup.token_retention_days", cl.token_retention_days),
            ("cleanup.audit_retention_days", cl.audit_retention_days),
            ("cleanup.error_retention_days", cl.error_retention_days),
        ] {
            if !(1..=36_500).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be between 1 and 36500 days",
                ));
            }
        }
        if !(0.0..=1.0).contains(&cl.vacuum_min_free_ratio) {
            return Err(ConfigError::invalid(
                "cleanup.vacuum_min_free_ratio",
                cl.vacuum_min_free_ratio,
                "must be between 0.0 and 1.0",
            ));
        }
        let al = &self.alerts;
        if let Some(url) = &al.webhook_url {
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
        if !(100..=3_600_000).contains(&al.interval_ms) {
            return Err(ConfigError::invalid(
                "alerts.interval_ms",
                al.interval_ms,
                "must be between 100 and 3600000",
            ));
        }
        if !(100..=300_000).contains(&al.webhook_timeout_ms) {
            return Err(ConfigError::invalid(
                "alerts.webhook_timeout_ms",
                al.webhook_timeout_ms,
                "must be between 100 and 300000",
            ));
        }
        if !(1..=100).contains(&al.webhook_max_attempts) {
            return Err(ConfigError::invalid(
                "alerts.webhook_max_attempts",
                al.webhook_max_attempts,
                "must be between 1 and 100",
            ));
        }
        if al.breaker_failures == 0 {
            return Err(ConfigError::invalid(
                "alerts.breaker_failures",
                0,
                "must be at least 1",
            ));
        }
        for (key, v) in [
            ("alerts.disk_used_percent", al.disk_used_percent),
            ("alerts.memory_percent", al.memory_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(ConfigError::invalid(key, v, "must be between 0 and 100"));
            }
        }
        let rl = &self.rate_limit;
        for (key, value) in [
            ("rate_limit.login_per_15_min", rl.login_per_15_min),
            ("rate_limit.expensive_per_minute", rl.expensive_per_minute),
            ("rate_limit.expensive_burst", rl.expensive_burst),
            ("rate_limit.general_per_second", rl.general_per_second),
            ("rate_limit.general_burst", rl.general_burst),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be at least 1 (set rate_limit.enabled = false to turn limits off)",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sentry.sample_rate) {
            return Err(ConfigError::invalid(
                "sentry.sample_rate",
                self.sentry.sample_rate,
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }

    /// Where backup archives go: `backup.dir`, or `<data_dir>/backups` when empty.
    pub fn backups_dir(&self) -> PathBuf {
        if self.backup.dir.as_os_str().is_empty() {
            crate::data_dir::DataDir::new(&self.data_dir).backups_dir()
        } else {
            self.backup.dir.clone()
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Turn figment's error into one line per problem that names the key, the value and
/// where it came from.
fn describe_figment_error(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e
                .path
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(".");
            let source = match &e.metadata {
                Some(md) => match &md.source {
                    Some(figment::Source::File(p)) => format!(" (in {})", p.display()),
                    _ if md.name.contains("Overrides") => " (from the command line)".into(),
                    _ if md.name.contains("environment") => {
                        let var = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
                        format!(" (from environment variable {var})")
                    }
                    _ => format!(" (in {})", md.name),
                },
                None => String::new(),
            };
            let kind = e.kind.to_string();
            if key.is_empty() {
                format!("{kind}{source}")
            } else {
                format!("`{key}`: {kind}{source}")
            }
        })
        .collect();
    ConfigError::Invalid(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let c = Config::default();
        c.validate().expect("defaults validate");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.sentry.dsn = Some(Secret::new("https://abcdef@example.invalid/1"));
        assert!(!format!("{c:?}").contains("abcdef"));
        assert!(!c.to_redacted_toml().contains("abcdef"));
        assert!(c.to_redacted_toml().contains("[redacted]"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_str("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("listen_addr"), "{msg}");
        assert!(msg.contains("listen"), "{msg}");
    }

    #[test]
    fn bad_address_names_key_value_and_form() {
        let err = Config::from_toml_str("[server]\nlisten = \"nope\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("server.listen"), "{msg}");
        assert!(msg.contains("nope"), "{msg}");
        assert!(msg.contains("IP:PORT"), "{msg}");
    }

    #[test]
    fn bad_enum_lists_allowed_values() {
        let err = Config::from_toml_str("[log]\nformat = \"xml\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("log.format"), "{msg}");
        assert!(
            msg.contains("xml") && msg.contains("text") && msg.contains("json"),
            "{msg}"
        );
    }

    #[test]
    fn range_errors_name_key_value_and_range() {
        let cases = [
            (
                "[database]\nreaders = 0",
                "database.readers",
                "between 1 and 64",
            ),
            (
                "[server]\nbody_limit_bytes = 10",
                "server.body_limit_bytes",
                "1024",
            ),
            ("[log]\nlevel = \"=[\"", "log.level", "tracing filter"),
            ("[sentry]\ndsn = \"not a dsn\"", "sentry.dsn", "Sentry DSN"),
            (
                "[sentry]\nsample_rate = 2.0",
                "sentry.sample_rate",
                "0.0 and 1.0",
            ),
            (
                "[health]\nmin_free_disk_bytes = 10\nwarn_free_disk_bytes = 5",
                "health.warn_free_disk_bytes",
                "at least",
            ),
            (
                "[database]\nwrite_timeout_ms = 0",
                "database.write_timeout_ms",
                "between",
            ),
            (
                "[database]\nwriter_cache_bytes = 4096",
                "database.writer_cache_bytes",
                "1 MiB",
            ),
        ];
        for (toml, key, allowed) in cases {
            let msg = Config::from_toml_str(toml).unwrap_err().to_string();
            assert!(msg.contains(key), "{toml}: {msg}");
            assert!(msg.contains(allowed), "{toml}: {msg}");
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let msg = Config::from_toml_str("[database]\nreaders = \"four\"")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("database.readers") && msg.contains("four"),
            "{msg}"
        );
    }
}
