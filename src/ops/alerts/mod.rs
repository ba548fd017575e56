//! Alerts: rules evaluated every `alerts.interval_ms` over what the appliance measures —
//! error rate, p99 latency, disk use, memory, backup freshness, the restart-curable deep
//! checks, migrations and search-index lag. Active alerts are listed at
//! `GET /api/admin/alerts` and in `/readyz`; each transition (firing, resolved) is logged
//! and, with `alerts.webhook_url`, POSTed as JSON by a delivery task of its own: a
//! bounded queue, a timeout per attempt, retries with exponential backoff and full
//! jitter, and a circuit breaker, so a slow or dead receiver never slows the appliance.

mod rules;
mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::AlertsConfig;

pub use rules::{evaluate, spawn, tick};
pub use webhook::spawn_webhook;

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

pub(super) fn alert(
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
