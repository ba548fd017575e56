//! The server's duties that are not request handlers (layer 4): the deep health checks
//! behind `/readyz`, the systemd notify protocol and watchdog, the metrics scrape and the
//! dashboard's last hour of traffic, alerts and their webhook, `doctor`, and the backup
//! and cleanup schedules. They run on `state::AppState`; the work itself is below them
//! (`backup::job`, `db::cleanup`, `db::inspect`).

pub mod alerts;
pub mod backups;
pub mod cleanup;
pub mod doctor;
pub mod health;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod restore;
pub mod watchdog;
