//! `[server]`: the HTTP listener, body limits, timeouts.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::{ConfigError, in_ranges};

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

pub(super) fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(d)?;
    raw.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{raw}` is not an address: expected IP:PORT such as 127.0.0.1:8080 or [::1]:8080"
        ))
    })
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_ranges::<u64>(
            "server",
            &[
                (
                    "body_limit_bytes",
                    self.body_limit_bytes,
                    1024..=1024 * 1024 * 1024,
                ),
                ("request_timeout_secs", self.request_timeout_secs, 1..=3600),
            ],
        )?;
        if self.shutdown_grace_secs > 600 {
            return Err(ConfigError::invalid(
                "server.shutdown_grace_secs",
                self.shutdown_grace_secs,
                "must be between 0 and 600",
            ));
        }
        Ok(())
    }
}
