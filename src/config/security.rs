//! `[security]` (sign-in, sessions, CORS, request hardening) and `[rate_limit]`.

use serde::{Deserialize, Serialize};

use super::{ConfigError, in_ranges};

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

impl SecurityConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.cors_origins {
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
        if !(self.public_url.is_empty()
            || self.public_url.starts_with("http://")
            || self.public_url.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "security.public_url",
                format!("\"{}\"", self.public_url),
                "must be empty or start with http:// or https://",
            ));
        }
        in_ranges::<u64>(
            "security",
            &[
                (
                    "session_idle_timeout_mins",
                    self.session_idle_timeout_mins,
                    1..=100_000,
                ),
                (
                    "session_absolute_timeout_hours",
                    self.session_absolute_timeout_hours,
                    1..=100_000,
                ),
                (
                    "reset_link_ttl_hours",
                    self.reset_link_ttl_hours,
                    1..=100_000,
                ),
            ],
        )?;
        in_ranges::<u32>(
            "security",
            &[("json_max_depth", self.json_max_depth, 2..=512)],
        )?;
        Ok(())
    }
}

impl RateLimitConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("rate_limit.login_per_15_min", self.login_per_15_min),
            ("rate_limit.expensive_per_minute", self.expensive_per_minute),
            ("rate_limit.expensive_burst", self.expensive_burst),
            ("rate_limit.general_per_second", self.general_per_second),
            ("rate_limit.general_burst", self.general_burst),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    key,
                    value,
                    "must be at least 1 (set rate_limit.enabled = false to turn limits off)",
                ));
            }
        }
        Ok(())
    }
}
