//! Delivery of transitions to `alerts.webhook_url`: in order, a timeout per attempt,
//! retries with exponential backoff and full jitter, and a circuit breaker.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::RngExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Breaker, Transition};
use crate::state::AppState;

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
