//! Operational duties that are not request handlers: the deep health checks behind
//! `/readyz`, the systemd notify protocol and watchdog, the metrics scrape, `doctor`
//! (and, as the Operations issue lands, `cleanup`).

pub mod alerts;
pub mod cleanup;
pub mod doctor;
pub mod errors;
pub mod health;
pub mod metrics;
pub mod watchdog;
