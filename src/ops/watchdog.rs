//! The systemd notify protocol (sd-notify): `READY=1` once the server is fully up,
//! `STATUS=` with a one-line summary whenever it changes, `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` only while the checks a restart can cure pass, `STOPPING=1` at
//! shutdown. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.
//!
//! Which failures withhold the watchdog ping: a database that stopped answering
//! (`database_read`), a wedged writer (`database_write`) and an unusable index
//! (`search_index`) — a fresh process cures those. A full disk or a pending migration
//! is reported in `STATUS=` and `/readyz` but does not restart the service: a restart
//! cannot fix them, and a restart loop would only hide the message.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::{Report, Status, deep_checks};
use crate::state::AppState;

pub use super::health::RESTART_WORTHY;

/// How often STATUS= is refreshed when systemd listens but has no watchdog configured.
const STATUS_INTERVAL: Duration = Duration::from_secs(15);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// One line for `systemctl status`: the overall state and what is not ok.
pub fn summary(report: &Report) -> String {
    let problems: Vec<String> = report
        .checks
        .iter()
        .filter(|(_, c)| c.status != Status::Ok)
        .map(|(name, c)| format!("{name}: {}", c.detail))
        .collect();
    let state = match report.status {
        Status::Ok => "ready",
        Status::Degraded => "degraded",
        Status::Failing => "failing",
    };
    if problems.is_empty() {
        state.to_string()
    } else {
        format!("{state}: {}", problems.join("; "))
    }
}

/// Whether this report allows a watchdog ping.
pub fn alive(report: &Report) -> bool {
    !report
        .checks
        .iter()
        .any(|(name, c)| RESTART_WORTHY.contains(name) && c.status == Status::Failing)
}

/// Tell systemd the server is up (listener bound, migrations applied, index open).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell systemd the server is stopping to start again in the same process (a restore
/// from the admin UI): "reloading" until the next READY=1, with more time allowed.
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("restarting to restore a backup"),
    ]);
}

/// Keep systemd's watchdog and start timeout satisfied while a long step runs before
/// the server is ready (a restore at start): `secs` more each time.
pub fn extend(secs: u64) {
    send(&[
        NotifyState::Watchdog,
        NotifyState::ExtendTimeoutUsec(
            u32::try_from(secs.saturating_mul(1_000_000)).unwrap_or(u32::MAX),
        ),
    ]);
}

/// Tell systemd the server is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The loop that runs the deep checks, refreshes STATUS= and pings the watchdog.
/// None outside systemd.
pub fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    if !under_systemd() {
        return None;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let interval = watchdog.map_or(STATUS_INTERVAL, |w| w / 2);
    if let Some(w) = watchdog {
        tracing::info!(timeout_ms = w.as_millis() as u64, "systemd watchdog on");
    }
    Some(tokio::spawn(async move {
        let mut last_status = String::new();
        let mut withheld = false;
        loop {
            let report = deep_checks(&state).await;
            let status = summary(&report);
            let ok = alive(&report);
            if status != last_status {
                send(&[NotifyState::Status(&status)]);
                last_status = status;
            }
            if watchdog.is_some() {
                if ok {
                    send(&[NotifyState::Watchdog]);
                    if withheld {
                        tracing::info!("checks pass again; watchdog pings resumed");
                    }
                } else if !withheld {
                    tracing::error!(status = %last_status, "withholding watchdog pings: systemd will restart the service");
                }
                withheld = !ok;
            }
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::health::Check;

    fn report(checks: &[(&'static str, Status)]) -> Report {
        Report {
            status: checks.iter().map(|c| c.1).max().unwrap_or(Status::Ok),
            checks: checks
                .iter()
                .map(|(n, s)| {
                    (
                        *n,
                        Check {
                            status: *s,
                            detail: format!("{n} detail"),
                            duration_ms: 1.0,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn only_failures_a_restart_cures_withhold_the_ping() {
        for name in RESTART_WORTHY {
            assert!(!alive(&report(&[
                (name, Status::Failing),
                ("disk", Status::Ok)
            ])));
            assert!(alive(&report(&[(name, Status::Degraded)])));
        }
        // A full disk is failing for /readyz, but restarting cannot fix it.
        let full = report(&[("disk", Status::Failing), ("database_read", Status::Ok)]);
        assert!(alive(&full));
        assert_eq!(summary(&full), "failing: disk: disk detail");
        assert_eq!(summary(&report(&[("disk", Status::Ok)])), "ready");
    }
}
