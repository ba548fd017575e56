//! The rules: evaluated every `alerts.interval_ms`, each firing alert recorded once per
//! transition.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Alert, MIN_LATENCY_SAMPLES, Transition, alert};
use crate::ops::health::Status;
use crate::state::AppState;

/// The memory limit the process lives under: its cgroup's `memory.max` when set, else
/// the machine's memory.
fn memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| format!("/sys/fs/cgroup{}/memory.max", p.trim_end_matches('/')))
        });
    if let Some(path) = cgroup
        && let Ok(v) = std::fs::read_to_string(path)
        && let Ok(n) = v.trim().parse::<u64>()
    {
        return Some(n);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Evaluate every rule now.
pub async fn evaluate(state: &AppState) -> Vec<Alert> {
    let c = &state.config().alerts;
    let mut firing = Vec::new();

    let errors = state.errors().last_minute() as f64;
    if errors > c.error_rate_per_minute {
        firing.push(alert(
            "error_rate",
            "warning",
            format!("{errors} unexpected errors in the last minute (see GET /api/admin/errors)"),
            errors,
            c.error_rate_per_minute,
        ));
    }
    if let (Some(p99), n) = state.alerts().p99()
        && n >= MIN_LATENCY_SAMPLES
        && p99 * 1000.0 > c.p99_latency_ms
    {
        firing.push(alert(
            "latency_p99",
            "warning",
            format!(
                "p99 request latency {:.0} ms over the last minute ({n} requests)",
                p99 * 1000.0
            ),
            p99 * 1000.0,
            c.p99_latency_ms,
        ));
    }
    let root = state.data_dir().root().to_path_buf();
    let (disk, rss, limit) = tokio::task::spawn_blocking(move || {
        let disk = crate::fsutil::disk_space(&root)
            .ok()
            .and_then(|s| s.used_percent());
        (disk, crate::ops::metrics::process_rss(), memory_limit())
    })
    .await
    .unwrap_or((None, None, None));
    if let Some(used) = disk
        && used > c.disk_used_percent
    {
        firing.push(alert(
            "disk_usage",
            "critical",
            format!("the data directory's disk is {used:.1}% full"),
            used,
            c.disk_used_percent,
        ));
    }
    if let (Some(rss), Some(limit)) = (rss, limit)
        && limit > 0
    {
        let pct = 100.0 * rss as f64 / limit as f64;
        if pct > c.memory_percent {
            firing.push(alert(
                "memory",
                "warning",
                format!(
                    "resident memory {} MiB is {pct:.0}% of the limit",
                    rss / (1024 * 1024)
                ),
                pct,
                c.memory_percent,
            ));
        }
    }

    let report = crate::ops::health::deep_checks(state).await;
    let check = |name: &str| report.checks.get(name);
    if let Some(b) = check("backup")
        && b.status != Status::Ok
    {
        firing.push(alert(
            "backup",
            "warning",
            format!("backup: {}", b.detail),
            1.0,
            0.0,
        ));
    }
    let failing: Vec<String> = crate::ops::health::RESTART_WORTHY
        .iter()
        .filter_map(|n| {
            check(n)
                .filter(|c| c.status == Status::Failing)
                .map(|c| format!("{n}: {}", c.detail))
        })
        .collect();
    if !failing.is_empty() {
        firing.push(alert(
            "health_check",
            "critical",
            format!(
                "watchdog-relevant checks failing (systemd will restart): {}",
                failing.join("; ")
            ),
            failing.len() as f64,
            0.0,
        ));
    }
    if let Some(m) = check("migrations")
        && m.status == Status::Failing
    {
        firing.push(alert(
            "migrations",
            "critical",
            format!("migrations: {}", m.detail),
            1.0,
            0.0,
        ));
    }
    if let Ok((_, Some(oldest))) = state.db().read(crate::db::outbox::outbox_backlog).await
        && let Some(lag) = crate::clock::age_secs(&oldest)
        && lag > c.index_lag_secs as f64
    {
        firing.push(alert(
            "index_lag",
            "warning",
            format!("the oldest change waiting for the search index is {lag:.0} s old"),
            lag,
            c.index_lag_secs as f64,
        ));
    }
    firing
}

/// Evaluate, record transitions (log, metric, webhook queue). Returns the transitions.
pub async fn tick(state: &AppState) -> Vec<Transition> {
    let firing = evaluate(state).await;
    let changes = state.alerts().update(firing);
    let instance = state.config().server.listen.to_string();
    let mut out = Vec::new();
    for (status, a) in changes {
        if status == "firing" {
            tracing::warn!(alert = a.name, severity = a.severity, summary = %a.summary, "alert firing");
            metrics::gauge!("appliance_alerts_firing", "alert" => a.name).set(1.0);
        } else {
            tracing::info!(alert = a.name, "alert resolved");
            metrics::gauge!("appliance_alerts_firing", "alert" => a.name).set(0.0);
        }
        let t = Transition {
            id: uuid::Uuid::new_v4().to_string(),
            status,
            at: crate::clock::now(),
            instance: instance.clone(),
            alert: a,
        };
        state.alerts().enqueue(t.clone());
        out.push(t);
    }
    out
}

/// Evaluate every `alerts.interval_ms` until `stop`; None when alerts are off.
pub fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    if !state.config().alerts.enabled {
        return None;
    }
    let every = Duration::from_millis(state.config().alerts.interval_ms);
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = tokio::time::sleep(every) => {}
            }
            tick(&state).await;
        }
    }))
}
