//! Error tracking: every unexpected error (a 5xx answer, a failed background job or
//! backup, a panic) becomes an [`ErrorEvent`] with category, severity, component,
//! operation, request id and a message with personal data removed ([`scrub`]). Events
//! are grouped by [`fingerprint`] into `error_groups` (count, first and last seen) by a
//! background writer fed through a bounded queue, so recording never blocks or fails
//! the request path (overflow is counted). With `sentry.dsn` set, the same scrubbed
//! events go to Sentry, tagged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::db::{Db, DbError};

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

/// Remove personal data and secrets from a message: email addresses, API tokens,
/// bearer credentials, long hex or base64 secrets, IP addresses, and anything after
/// `password=` / `token=` / `secret=`. Bounded to 2,000 characters.
pub fn scrub(message: &str) -> String {
    let mut out = Vec::new();
    let mut redact_next = false;
    for word in message.split_inclusive(|c: char| c.is_whitespace()) {
        let (core, tail) = split_trailing_ws(word);
        if redact_next {
            redact_next = false;
            out.push(format!("[redacted]{tail}"));
            continue;
        }
        if core.eq_ignore_ascii_case("bearer") {
            redact_next = true;
            out.push(word.to_string());
            continue;
        }
        out.push(format!("{}{tail}", scrub_word(core)));
    }
    let s: String = out.concat();
    if s.chars().count() > 2000 {
        s.chars().take(2000).collect::<String>() + "…"
    } else {
        s
    }
}

fn split_trailing_ws(w: &str) -> (&str, &str) {
    let trimmed = w.trim_end();
    (trimmed, &w[trimmed.len()..])
}

fn scrub_word(word: &str) -> String {
    // Keys whose value is secret: everything after the `=` / `:` goes.
    for key in [
        "password", "passwd", "token", "secret", "api_key", "apikey", "dsn",
    ] {
        let lower = word.to_ascii_lowercase();
        if let Some(pos) = lower.find(key) {
            let rest = &word[pos + key.len()..];
            if let Some(sep) = rest.find(['=', ':'])
                && sep <= 2
            {
                return format!("{}[redacted]", &word[..pos + key.len() + sep + 1]);
            }
        }
    }
    // Split on punctuation that commonly surrounds values, scrub the pieces.
    let mut out = String::with_capacity(word.len());
    let mut piece = String::new();
    for c in word.chars() {
        if matches!(
            c,
            '"' | '\''
                | '`'
                | '('
                | ')'
                | '['
                | ']'
                | '<'
                | '>'
                | ','
                | ';'
                | '/'
                | '='
                | '{'
                | '}'
        ) {
            out.push_str(&scrub_piece(&piece));
            piece.clear();
            out.push(c);
        } else {
            piece.push(c);
        }
    }
    out.push_str(&scrub_piece(&piece));
    out
}

fn scrub_piece(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    if let Some((local, domain)) = p.split_once('@')
        && !local.is_empty()
        && domain.contains('.')
    {
        return "[email]".into();
    }
    if p.starts_with(crate::auth::TOKEN_PREFIX) {
        return "[token]".into();
    }
    let hexish = p.chars().filter(char::is_ascii_hexdigit).count();
    if p.len() >= 24 && hexish == p.len() {
        return "[secret]".into();
    }
    let b64ish = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_'));
    let has_digit = p.chars().any(|c| c.is_ascii_digit());
    let has_alpha = p.chars().any(|c| c.is_ascii_alphabetic());
    if p.len() >= 32 && b64ish && has_digit && has_alpha {
        return "[secret]".into();
    }
    let trimmed = p.trim_end_matches(['.', ':']);
    if trimmed.parse::<std::net::IpAddr>().is_ok()
        || trimmed.parse::<std::net::SocketAddr>().is_ok()
    {
        return format!("[ip]{}", &p[trimmed.len()..]);
    }
    p.to_string()
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

/// Store events as they come, in batches, until `stop`; then drain what is queued.
pub fn spawn_writer(
    db: Db,
    mut rx: mpsc::Receiver<ErrorEvent>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                e = rx.recv() => e,
                () = crate::app::stopped(&mut stop) => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            store_batch(&db, batch).await;
        }
        let mut rest = Vec::new();
        while let Ok(e) = rx.try_recv() {
            rest.push(e);
        }
        if !rest.is_empty() {
            store_batch(&db, rest).await;
        }
    })
}

async fn store_batch(db: &Db, batch: Vec<ErrorEvent>) {
    let n = batch.len();
    let res = db
        .write(move |c| {
            for e in &batch {
                store(c, e)?;
            }
            Ok::<_, DbError>(())
        })
        .await;
    if let Err(e) = res {
        // Not recorded as an error event: that could loop while the database is down.
        tracing::error!(error = %e, events = n, "cannot store error events");
    }
}

/// Upsert one event into its group.
pub fn store(c: &Connection, e: &ErrorEvent) -> Result<(), DbError> {
    let now = crate::db::articles::now();
    c.execute(
        "INSERT INTO error_groups (fingerprint, category, severity, component, operation, message, count, first_seen, last_seen, last_request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?8)
         ON CONFLICT (fingerprint) DO UPDATE SET
           count = count + 1, last_seen = excluded.last_seen, message = excluded.message,
           last_request_id = coalesce(excluded.last_request_id, last_request_id),
           severity = CASE WHEN excluded.severity = 'critical' OR severity = 'critical' THEN 'critical'
                           WHEN excluded.severity = 'high' OR severity = 'high' THEN 'high'
                           WHEN excluded.severity = 'medium' OR severity = 'medium' THEN 'medium'
                           ELSE 'low' END",
        params![
            fingerprint(e),
            e.category.as_str(),
            e.severity.as_str(),
            e.component,
            e.operation,
            e.message,
            now,
            e.request_id
        ],
    )?;
    Ok(())
}

/// A stored group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub fingerprint: String,
    pub category: String,
    pub severity: String,
    pub component: String,
    pub operation: String,
    pub message: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub last_request_id: Option<String>,
}

/// Filters of a listing (each narrows it); newest `last_seen` first.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub category: Option<String>,
    pub severity: Option<String>,
    pub component: Option<String>,
    /// Only groups seen at or after this RFC 3339 time.
    pub since: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

pub fn list(c: &Connection, f: &Filter) -> Result<Vec<Group>, DbError> {
    let mut stmt = c.prepare(
        "SELECT fingerprint, category, severity, component, operation, message, count, first_seen, last_seen, last_request_id
         FROM error_groups
         WHERE (?1 IS NULL OR category = ?1) AND (?2 IS NULL OR severity = ?2)
           AND (?3 IS NULL OR component = ?3) AND (?4 IS NULL OR last_seen >= ?4)
         ORDER BY last_seen DESC, fingerprint LIMIT ?5 OFFSET ?6",
    )?;
    let rows = stmt.query_map(
        params![
            f.category,
            f.severity,
            f.component,
            f.since,
            f.limit,
            f.offset
        ],
        |r| {
            Ok(Group {
                fingerprint: r.get(0)?,
                category: r.get(1)?,
                severity: r.get(2)?,
                component: r.get(3)?,
                operation: r.get(4)?,
                message: r.get(5)?,
                count: r.get(6)?,
                first_seen: r.get(7)?,
                last_seen: r.get(8)?,
                last_request_id: r.get(9)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_personal_data_and_secrets() {
        let token = crate::auth::new_api_token().token;
        let msg = format!(
            "user Alice.Smith@example.org (from 203.0.113.9:5555) sent {token} and \
             Authorization: Bearer abc.def password=hunter2hunter2 session 0123456789abcdef0123456789abcdef; \
             path /var/lib/appliance/x failed at row 17"
        );
        let s = scrub(&msg);
        for gone in [
            "Alice",
            "example.org",
            "203.0.113.9",
            &token,
            "abc.def",
            "hunter2",
            "0123456789abcdef",
        ] {
            assert!(!s.contains(gone), "{gone} left in: {s}");
        }
        for kept in [
            "[email]",
            "[ip]",
            "[token]",
            "Bearer [redacted]",
            "password=[redacted]",
            "/var/lib/appliance/x",
            "row 17",
        ] {
            assert!(s.contains(kept), "{kept} missing: {s}");
        }
    }

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
