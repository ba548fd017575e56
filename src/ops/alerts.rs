//! Alerts: rules evaluated every `alerts.interval_ms` over what the appliance measures —
//! error rate, p99 latency, disk use, memory, backup freshness, the restart-curable deep
//! checks, migrations and search-index lag. Active alerts are listed at
//! `GET /api/admin/alerts` and in `/readyz`; each transition (firing, resolved) is logged
//! and, with `alerts.webhook_url`, POSTed as JSON by a delivery task of its own: a
//! bounded queue, a timeout per attempt, retries with exponential backoff and full
//! jitter, and a circuit breaker, so a slow or dead receiver never slows the appliance.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::AlertsConfig;
use crate::ops::health::Status;
use crate::state::AppState;

/// Transitions waiting for the webhook; more are dropped (and counted).
const WEBHOOK_QUEUE: usize = 256;
/// Latency samples kept for the p99 (the last minute, at most this many).
const LATENCY_SAMPLES: usize = 20_000;
/// Fewer samples than this in the window: no p99 alert (one slow request is not a p99).
const MIN_LATENCY_SAMPLES: usize = 20;

/// An alert that is firing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// Rule name: `error_rate`, `latency_p99`, `disk_usage`, `memory`, `backup`,
    /// `health_check`, `migrations`, `index_lag`.
    pub name: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    /// When it started firing (RFC 3339).
    pub since: String,
}

/// A change of an alert, as delivered to the webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Unique per transition: receivers can de-duplicate retried deliveries.
    pub id: String,
    /// `firing` or `resolved`.
    pub status: &'static str,
    pub alert: Alert,
    pub at: String,
    pub instance: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

/// Counters of the webhook delivery, for the API.
#[derive(Debug, Default)]
struct WebhookStats {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
}

/// The alert state of one server (held in `AppState`).
pub struct Alerts {
    active: Mutex<BTreeMap<&'static str, Alert>>,
    latency: Mutex<VecDeque<(Instant, f64)>>,
    webhook: Option<mpsc::Sender<Transition>>,
    stats: WebhookStats,
    breaker: Mutex<(Breaker, Option<Instant>)>,
}

impl Alerts {
    /// The alert state, and the webhook queue's receiving end when a webhook is set.
    pub fn new(config: &AlertsConfig) -> (Alerts, Option<mpsc::Receiver<Transition>>) {
        let (tx, rx) = if config.webhook_url.is_some() {
            let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        (
            Alerts {
                active: Mutex::new(BTreeMap::new()),
                latency: Mutex::new(VecDeque::new()),
                webhook: tx,
                stats: WebhookStats::default(),
                breaker: Mutex::new((Breaker::Closed, None)),
            },
            rx,
        )
    }

    /// Record one request's duration (called by the metrics middleware).
    pub fn observe_latency(&self, secs: f64) {
        let mut l = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        l.push_back((now, secs));
        while l.len() > LATENCY_SAMPLES
            || l.front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            l.pop_front();
        }
    }

    /// p99 of request durations in the last minute, and the number of samples.
    pub fn p99(&self) -> (Option<f64>, usize) {
        let l = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let mut v: Vec<f64> = l
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= Duration::from_secs(60))
            .map(|(_, d)| *d)
            .collect();
        if v.is_empty() {
            return (None, 0);
        }
        v.sort_by(f64::total_cmp);
        let idx = ((v.len() as f64) * 0.99).ceil() as usize;
        (v.get(idx.saturating_sub(1)).copied(), v.len())
    }

    /// The alerts firing now, by name.
    pub fn active(&self) -> Vec<Alert> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The webhook's state for the API.
    pub fn webhook_status(&self) -> Value {
        if self.webhook.is_none() {
            return json!({"configured": false});
        }
        let s = &self.stats;
        json!({
            "configured": true,
            "breaker": self.breaker_state(),
            "queued": s.queued.load(Ordering::Relaxed),
            "delivered": s.delivered.load(Ordering::Relaxed),
            "failed_attempts": s.failed_attempts.load(Ordering::Relaxed),
            "given_up": s.given_up.load(Ordering::Relaxed),
            "dropped": s.dropped.load(Ordering::Relaxed),
        })
    }

    fn breaker_state(&self) -> Breaker {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    fn set_breaker(&self, b: Breaker, until: Option<Instant>) {
        *self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (b, until);
    }

    /// Replace the firing set with `now_firing`; returns the transitions.
    fn update(&self, now_firing: Vec<Alert>) -> Vec<(&'static str, Alert)> {
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changes = Vec::new();
        let names: Vec<&'static str> = now_firing.iter().map(|a| a.name).collect();
        for name in active.keys().copied().collect::<Vec<_>>() {
            if !names.contains(&name)
                && let Some(a) = active.remove(name)
            {
                changes.push(("resolved", a));
            }
        }
        for mut a in now_firing {
            match active.get_mut(a.name) {
                Some(existing) => {
                    // Still firing: keep its start, refresh the numbers.
                    a.since = existing.since.clone();
                    *existing = a;
                }
                None => {
                    changes.push(("firing", a.clone()));
                    active.insert(a.name, a);
                }
            }
        }
        changes
    }

    fn enqueue(&self, t: Transition) {
        if let Some(tx) = &self.webhook {
            match tx.try_send(t) {
                Ok(()) => {
                    self.stats.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("alert webhook queue full; a transition was dropped");
                }
            }
        }
    }
}

fn alert(
    name: &'static str,
    severity: &'static str,
    summary: String,
    value: f64,
    threshold: f64,
) -> Alert {
    Alert {
        name,
        severity,
        summary,
        value,
        threshold,
        since: crate::clock::now(),
    }
}

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
    let failing: Vec<String> = ["database_read", "database_write", "search_index"]
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
    if let Ok((_, Some(oldest))) = state.db().read(crate::db::articles::outbox_backlog).await
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

/// Deliver transitions to the webhook, in order, until `stop` (what is queued then is
/// abandoned, counted as given up).
pub fn spawn_webhook(
    state: AppState,
    mut rx: mpsc::Receiver<Transition>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let c = state.config().alerts.clone();
        let Some(url) = c.webhook_url.clone() else {
            return;
        };
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(c.webhook_timeout_ms))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook client; alerts are not delivered");
                return;
            }
        };
        let mut consecutive_failures = 0u32;
        loop {
            let t = tokio::select! {
                t = rx.recv() => t,
                () = crate::shutdown::stopped(&mut stop) => None,
            };
            let Some(t) = t else { break };
            state.alerts().stats.queued.fetch_sub(1, Ordering::Relaxed);
            let mut attempt = 0u32;
            let delivered = loop {
                if *stop.borrow() {
                    break false;
                }
                // An open breaker: wait out the cool-down, then try once (half open).
                let until = state
                    .alerts()
                    .breaker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .1;
                if let Some(until) = until {
                    let wait = until.saturating_duration_since(Instant::now());
                    tokio::select! {
                        () = crate::shutdown::stopped(&mut stop) => break false,
                        () = tokio::time::sleep(wait) => {}
                    }
                    state.alerts().set_breaker(Breaker::HalfOpen, None);
                }
                attempt += 1;
                let res = client.post(url.expose()).json(&t).send().await;
                let ok = matches!(&res, Ok(r) if r.status().is_success());
                if ok {
                    consecutive_failures = 0;
                    state.alerts().set_breaker(Breaker::Closed, None);
                    break true;
                }
                state
                    .alerts()
                    .stats
                    .failed_attempts
                    .fetch_add(1, Ordering::Relaxed);
                consecutive_failures += 1;
                let why = match res {
                    Ok(r) => format!("answered {}", r.status()),
                    Err(e) if e.is_timeout() => "timed out".to_string(),
                    Err(e) => format!("unreachable: {e}"),
                };
                tracing::warn!(
                    attempt,
                    alert = t.alert.name,
                    status = t.status,
                    "alert webhook {why}"
                );
                if consecutive_failures >= c.breaker_failures {
                    let until = Instant::now() + Duration::from_secs(c.breaker_open_secs);
                    if state.alerts().breaker_state() != Breaker::Open {
                        tracing::error!(
                            failures = consecutive_failures,
                            open_secs = c.breaker_open_secs,
                            "alert webhook circuit breaker open"
                        );
                    }
                    state.alerts().set_breaker(Breaker::Open, Some(until));
                }
                if attempt >= c.webhook_max_attempts {
                    break false;
                }
                // Exponential backoff with full jitter (AWS Architecture Blog, 2015).
                let cap = Duration::from_secs(60).min(
                    Duration::from_millis(c.webhook_backoff_ms)
                        .saturating_mul(1 << attempt.min(16)),
                );
                let wait = cap.mul_f64(rand::rng().random::<f64>());
                tokio::select! {
                    () = crate::shutdown::stopped(&mut stop) => break false,
                    () = tokio::time::sleep(wait) => {}
                }
            };
            if delivered {
                state
                    .alerts()
                    .stats
                    .delivered
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                state
                    .alerts()
                    .stats
                    .given_up
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    alert = t.alert.name,
                    status = t.status,
                    attempts = attempt,
                    "alert webhook delivery given up"
                );
                use crate::telemetry::errors::{Category, ErrorEvent, Severity};
                state.errors().record(ErrorEvent::new(
                    Category::Network,
                    Severity::Medium,
                    "alerts",
                    "alerts.webhook",
                    format!(
                        "{} {} not delivered after {attempt} attempts",
                        t.alert.name, t.status
                    ),
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &'static str) -> Alert {
        alert(name, "warning", "s".into(), 1.0, 0.0)
    }

    #[test]
    fn transitions_fire_once_and_resolve_once() {
        let (al, _) = Alerts::new(&AlertsConfig::default());
        let ch = al.update(vec![a("disk_usage")]);
        assert_eq!(
            ch.iter().map(|(s, x)| (*s, x.name)).collect::<Vec<_>>(),
            [("firing", "disk_usage")]
        );
        let since = al.active()[0].since.clone();
        assert!(
            al.update(vec![a("disk_usage")]).is_empty(),
            "still firing: no new transition"
        );
        assert_eq!(al.active()[0].since, since);
        let ch = al.update(vec![a("memory")]);
        let mut got: Vec<_> = ch.iter().map(|(s, x)| (*s, x.name)).collect();
        got.sort();
        assert_eq!(got, [("firing", "memory"), ("resolved", "disk_usage")]);
    }

    #[test]
    fn p99_over_the_window() {
        let (al, _) = Alerts::new(&AlertsConfig::default());
        for i in 0..100 {
            al.observe_latency(if i == 99 { 5.0 } else { 0.001 });
        }
        let (p99, n) = al.p99();
        assert_eq!(n, 100);
        assert_eq!(p99, Some(0.001));
        al.observe_latency(5.0);
        assert_eq!(al.p99().0, Some(5.0));
    }
}
