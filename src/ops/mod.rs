//! Operational duties that are not request handlers: the deep health checks behind
//! `/readyz`, the systemd notify protocol and watchdog, the metrics scrape and the
//! dashboard's last hour of traffic, `doctor`, `cleanup`, errors and alerts.

pub mod alerts;
pub mod backups;
pub mod cleanup;
pub mod doctor;
pub mod health;
pub mod history;
pub mod metrics;
pub mod watchdog;
