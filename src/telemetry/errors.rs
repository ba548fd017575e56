//! Error tracking (the runtime; storage is `db::errors`): every unexpected error (a 5xx answer, a failed background job or
//! backup, a panic) becomes an [`ErrorEvent`] with category, severity, component,
//! operation, request id and a message with personal data removed ([`scrub`](super::scrub::scrub)). Events
//! are grouped by [`fingerprint`] into `error_groups` (count, first and last seen) by a
//! background writer (`db::errors::spawn_writer`) fed through a bounded queue, so recording never blocks or fails
//! the request path (overflow is counted). With `sentry.dsn` set, the same scrubbed
//! events go to Sentry, tagged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use super::scrub::scrub;

/// Events waiting for the writer; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Database,
    Validation,
    Authentication,
    Network,
    BusinessLogic,
    System,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Database => "database",
            Category::Validation => "validation",
            Category::Authentication => "authentication",
            Category::Network => "network",
            Category::BusinessLogic => "business_logic",
            Category::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
    fn sentry_level(self) -> sentry::Level {
        match self {
            Severity::Low => sentry::Level::Info,
            Severity::Medium => sentry::Level::Warning,
            Severity::High => sentry::Level::Error,
            Severity::Critical => sentry::Level::Fatal,
        }
    }
}

/// One unexpected error.
#[derive(Debug, Clone)]
pub struct ErrorEvent {
    pub category: Category,
    pub severity: Severity,
    /// Where: `http`, `indexer`, `backup`, `scheduler`, `panic`…
    pub component: String,
    /// What it was doing: `POST /api/articles`, `backup.create`…
    pub operation: String,
    pub request_id: Option<String>,
    pub message: String,
}

impl ErrorEvent {
    pub fn new(
        category: Category,
        severity: Severity,
        component: impl Into<String>,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> ErrorEvent {
        ErrorEvent {
            category,
            severity,
            component: component.into(),
            operation: operation.into(),
            request_id: None,
            message: message.into(),
        }
    }
    pub fn request_id(mut self, id: Option<String>) -> ErrorEvent {
        self.request_id = id;
        self
    }
}

/// The group of an event: category, component, operation and the message with
/// numbers and quoted values blurred (so "row 17" and "row 18" group together).
pub fn fingerprint(e: &ErrorEvent) -> String {
    let mut norm = String::with_capacity(e.message.len());
    let mut in_quote: Option<char> = None;
    for c in e.message.chars() {
        match in_quote {
            Some(q) if c == q => {
                in_quote = None;
                norm.push('?');
            }
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => in_quote = Some(c),
            None if c.is_ascii_digit() => {
                if !norm.ends_with('#') {
                    norm.push('#');
                }
            }
            None => norm.push(c),
        }
    }
    let key = format!(
        "{}|{}|{}|{}",
        e.category.as_str(),
        e.component,
        e.operation,
        norm
    );
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The process's error recorder (cheap to share; held in `AppState`).
pub struct Tracker {
    tx: mpsc::Sender<ErrorEvent>,
    dropped: AtomicU64,
    /// When recent events happened, for the error-rate alert (last minute).
    recent: Mutex<VecDeque<Instant>>,
}

impl Tracker {
    /// A tracker and the receiving end for [`spawn_writer`].
    pub fn new(capacity: usize) -> (Arc<Tracker>, mpsc::Receiver<ErrorEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let t = Arc::new(Tracker {
            tx,
            dropped: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        });
        register_for_panics(&t);
        (t, rx)
    }

    /// Record an event: scrub it, count it, send it to Sentry (when configured) and
    /// queue it for storage. Never blocks; a full queue drops the event and counts it.
    pub fn record(&self, mut e: ErrorEvent) {
        e.message = scrub(&e.message);
        e.operation = scrub(&e.operation);
        metrics::counter!(
            "appliance_errors_total",
            "category" => e.category.as_str(),
            "severity" => e.severity.as_str()
        )
        .increment(1);
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            recent.push_back(now);
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
                || recent.len() > 100_000
            {
                recent.pop_front();
            }
        }
        to_sentry(&e);
        if self.tx.try_send(e).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("appliance_error_events_dropped_total").increment(1);
        }
    }

    /// Events recorded in the last minute.
    pub fn last_minute(&self) -> usize {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        recent
            .iter()
            .filter(|t| now.duration_since(**t) <= Duration::from_secs(60))
            .count()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn to_sentry(e: &ErrorEvent) {
    if sentry::Hub::current().client().is_none() {
        return;
    }
    let mut event = sentry::protocol::Event {
        message: Some(e.message.clone()),
        level: e.severity.sentry_level(),
        logger: Some(e.component.clone()),
        fingerprint: vec![fingerprint(e).into()].into(),
        ..Default::default()
    };
    for (k, v) in [
        ("category", e.category.as_str().to_string()),
        ("severity", e.severity.as_str().to_string()),
        ("component", e.component.clone()),
        ("operation", e.operation.clone()),
    ] {
        event.tags.insert(k.into(), v);
    }
    if let Some(id) = &e.request_id {
        event.tags.insert("request_id".into(), id.clone());
    }
    sentry::capture_event(event);
}

/// Trackers that panics (anywhere in the process) are recorded into: the newest one
/// (a process runs one server; tests run several, the newest wins).
static PANIC_TRACKER: OnceLock<Mutex<Weak<Tracker>>> = OnceLock::new();

fn register_for_panics(t: &Arc<Tracker>) {
    let mut first = false;
    let slot = PANIC_TRACKER.get_or_init(|| {
        first = true;
        Mutex::new(Weak::new())
    });
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::downgrade(t);
    if first {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            let location = info
                .location()
                .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
            let tracker = PANIC_TRACKER.get().and_then(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .upgrade()
            });
            if let Some(t) = tracker {
                let thread = std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_string();
                t.record(ErrorEvent::new(
                    Category::System,
                    Severity::Critical,
                    "panic",
                    format!("thread {thread} at {location}"),
                    message,
                ));
            }
            previous(info);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_group_by_shape_not_by_values() {
        let e = |m: &str| ErrorEvent::new(Category::Database, Severity::High, "http", "GET /x", m);
        assert_eq!(
            fingerprint(&e("row 17 of 'a' failed")),
            fingerprint(&e("row 18 of 'bb' failed"))
        );
        assert_ne!(
            fingerprint(&e("row 17 failed")),
            fingerprint(&e("disk full"))
        );
        let mut other = e("row 17 failed");
        other.component = "backup".into();
        assert_ne!(fingerprint(&e("row 17 failed")), fingerprint(&other));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (t, _rx) = Tracker::new(2);
        let started = Instant::now();
        for i in 0..5 {
            t.record(ErrorEvent::new(
                Category::System,
                Severity::Low,
                "test",
                "op",
                format!("e{i}"),
            ));
        }
        assert_eq!(t.dropped(), 3);
        assert_eq!(t.last_minute(), 5);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
