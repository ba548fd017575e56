//! Operational duties that are not request handlers: the deep health checks behind
//! `/readyz` (and, as the Operations issue lands, the systemd watchdog, `doctor` and
//! `cleanup`).

pub mod health;
