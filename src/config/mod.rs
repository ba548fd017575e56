//! Configuration: embedded defaults, then a TOML file, then `APPLIANCE__SECTION__KEY`
//! environment variables, then command-line flags (each layer wins over the one before).
//!
//! Unknown keys and bad values are rejected with a message naming the key, the value and
//! what is allowed. Secrets are wrapped in [`Secret`] so that neither `Debug` nor
//! `config print` can leak them. Nothing here opens the database or binds sockets.

mod content;
mod database;
pub mod docs;
mod observe;
mod remote;
mod schedules;
mod secret;
mod security;
mod server;

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use content::{Analyzer, ArticlesConfig, SearchConfig};
pub use database::{DatabaseConfig, HealthConfig, Synchronous};
pub use observe::{AlertsConfig, LogConfig, LogFormat, MetricsConfig, SentryConfig};
pub use remote::RemoteConfig;
pub use schedules::{BackupConfig, CleanupConfig};
pub use secret::Secret;
use secret::resolve_secret;
pub use security::{RateLimitConfig, SecurityConfig};
pub use server::ServerConfig;

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
    /// Where each key's value came from (`server.listen` → `file`); filled by
    /// [`Config::load`], empty (all defaults) otherwise. Not part of the configuration.
    #[serde(skip)]
    pub origins: std::collections::BTreeMap<String, Origin>,
}

/// Where a configuration value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Default,
    File,
    Environment,
    CommandLine,
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
            origins: Default::default(),
        }
    }
}

pub use crate::schedule::parse_cron;

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

/// A range rule of a section: the key (within the section), its value, and what is
/// allowed.
type RangeRule<'a, T> = (&'a str, T, RangeInclusive<T>);

/// How a bound reads in an error: integers as they are (bytes with their binary size
/// from 1 MiB up), fractions with their decimal point.
trait Bound: PartialOrd + Copy {
    fn show(self, key: &str) -> String;
}

impl Bound for u64 {
    fn show(self, key: &str) -> String {
        const MIB: u64 = 1024 * 1024;
        match self {
            n if key.ends_with("_bytes") && n >= 1024 * MIB && n % (1024 * MIB) == 0 => {
                format!("{n} ({} GiB)", n / (1024 * MIB))
            }
            n if key.ends_with("_bytes") && n >= MIB && n % MIB == 0 => {
                format!("{n} ({} MiB)", n / MIB)
            }
            n => n.to_string(),
        }
    }
}

impl Bound for u32 {
    fn show(self, key: &str) -> String {
        u64::from(self).show(key)
    }
}

impl Bound for f64 {
    fn show(self, _key: &str) -> String {
        format!("{self:?}")
    }
}

impl Bound for f32 {
    fn show(self, _key: &str) -> String {
        format!("{self:?}")
    }
}

/// The one range check: every rule's value must lie in its range; the first that does
/// not is the error, which says the range (and the unit a key's name gives it).
fn in_ranges<T: Bound + fmt::Display>(
    section: &str,
    rules: &[RangeRule<'_, T>],
) -> Result<(), ConfigError> {
    let Some((name, value, allowed)) = rules.iter().find(|(_, v, r)| !r.contains(v)) else {
        return Ok(());
    };
    let key = &format!("{section}.{name}");
    let unit = match key.rsplit('_').next() {
        Some("ms") => " (milliseconds)",
        Some("days") => " days",
        _ => "",
    };
    Err(ConfigError::invalid(
        key,
        value,
        &format!(
            "must be between {} and {}{unit}",
            allowed.start().show(key),
            allowed.end().show(key)
        ),
    ))
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
        config.origins = docs::keys(&config)
            .into_iter()
            .map(|key| {
                let given = match key.as_str() {
                    "data_dir" => overrides.data_dir.is_some(),
                    "server.listen" => overrides
                        .server
                        .as_ref()
                        .is_some_and(|s| s.listen.is_some()),
                    _ => false,
                };
                let origin = match figment.find_metadata(&key) {
                    _ if given => Origin::CommandLine,
                    Some(m) if matches!(m.source, Some(figment::Source::File(_))) => Origin::File,
                    Some(m) if m.name.contains("environment") => Origin::Environment,
                    _ => Origin::Default,
                };
                (key, origin)
            })
            .collect();
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

    /// Checks that serde cannot express: ranges, relations between keys, syntax of
    /// filters and DSNs. Each section checks itself.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "data_dir",
                "\"\"",
                "must name a directory",
            ));
        }
        self.server.validate()?;
        self.database.validate()?;
        self.health.validate()?;
        self.articles.validate()?;
        self.search.validate()?;
        self.backup.validate()?;
        self.log.validate()?;
        self.sentry.validate()?;
        self.security.validate()?;
        self.cleanup.validate()?;
        self.alerts.validate()?;
        self.rate_limit.validate()
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
        )?;
        resolve_secret(
            &mut self.backup.remote.secret_access_key,
            &mut self.backup.remote.secret_access_key_file,
            "backup.remote.secret_access_key",
        )
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
