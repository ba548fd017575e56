//! Operational duties that are not request handlers: the deep health checks behind
//! `/readyz`, the systemd notify protocol and watchdog (and, as the Operations issue
//! lands, `doctor` and `cleanup`).

pub mod health;
pub mod metrics;
pub mod watchdog;
