//! The last hour of HTTP traffic for the admin dashboard's live charts: request rate,
//! p99 latency and 5xx rate in 30-second buckets, kept in memory (a restart starts
//! empty; Prometheus on the metrics listener is the long-term record). Latencies go
//! into a fixed log-scale histogram per bucket, so memory is bounded and the p99 of a
//! bucket is exact to within one histogram step (about 19 %).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Width of one bucket, in seconds.
pub const BUCKET_SECS: u64 = 30;
/// Buckets kept: one hour.
pub const BUCKETS: usize = 120;
/// Histogram steps: 50 µs × 1.19^i, up to about 60 s.
const STEPS: usize = 82;
const FIRST_STEP_SECS: f64 = 50e-6;
const GROWTH: f64 = 1.19;

#[derive(Clone)]
struct Bucket {
    start: u64,
    requests: u64,
    errors: u64,
    latency: [u32; STEPS],
    /// The admin dashboard's own polling: counted apart, never in the figures above.
    polling: u64,
}

/// One point of the series, as the API answers it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Bucket start, Unix seconds.
    pub t: u64,
    pub requests: u64,
    /// Requests per second over the bucket.
    pub rate: f64,
    /// 5xx answers.
    pub errors: u64,
    /// p99 latency in milliseconds (none without requests).
    pub p99_ms: Option<f64>,
    /// Requests of the admin dashboard's own polling in the bucket (left out of
    /// `requests`, `rate`, `errors` and `p99_ms`, so watching does not draw traffic).
    pub polling: u64,
    /// False for buckets that ended before this server started: no data, not zero
    /// traffic (charts draw a gap).
    pub up: bool,
}

#[derive(Default)]
pub struct History {
    buckets: Mutex<VecDeque<Bucket>>,
    /// Unix time the server started (0: always up).
    started: u64,
}

fn step_of(secs: f64) -> usize {
    if secs <= FIRST_STEP_SECS {
        return 0;
    }
    let i = ((secs / FIRST_STEP_SECS).ln() / GROWTH.ln()).ceil();
    (i as usize).min(STEPS - 1)
}

/// Upper bound of step `i`, in seconds.
fn step_upper(i: usize) -> f64 {
    FIRST_STEP_SECS * GROWTH.powi(i as i32)
}

impl History {
    /// A history for a server that started at Unix time `started`.
    pub fn starting_at(started: u64) -> History {
        History {
            started,
            ..History::default()
        }
    }

    /// Record one finished request at Unix time `now`; `polling`: the admin
    /// dashboard's own refresh, counted apart.
    pub fn observe(&self, now: u64, secs: f64, server_error: bool, polling: bool) {
        let start = now - now % BUCKET_SECS;
        let mut b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.back().is_none_or(|last| last.start < start) {
            b.push_back(Bucket {
                start,
                requests: 0,
                errors: 0,
                latency: [0; STEPS],
                polling: 0,
            });
            while b.len() > BUCKETS {
                b.pop_front();
            }
        }
        // A request finishing just after a bucket turned still lands in the newest one.
        if let Some(last) = b.back_mut() {
            if polling {
                last.polling += 1;
                return;
            }
            last.requests += 1;
            last.errors += u64::from(server_error);
            last.latency[step_of(secs)] += 1;
        }
    }

    /// The last hour up to Unix time `now`, oldest first, one point per bucket (empty
    /// buckets included, so the x axis is even).
    pub fn series(&self, now: u64) -> Vec<Point> {
        let b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let newest = now - now % BUCKET_SECS;
        let oldest = newest.saturating_sub(BUCKET_SECS * (BUCKETS as u64 - 1));
        let mut out = Vec::with_capacity(BUCKETS);
        let mut it = b.iter().filter(|x| x.start >= oldest).peekable();
        let mut t = oldest;
        while t <= newest {
            let bucket = it.next_if(|x| x.start == t);
            // The current bucket's rate is over the seconds elapsed so far.
            let span = if t == newest {
                (now - t + 1) as f64
            } else {
                BUCKET_SECS as f64
            };
            let up = t + BUCKET_SECS > self.started;
            out.push(match bucket {
                Some(x) => Point {
                    t,
                    requests: x.requests,
                    rate: x.requests as f64 / span,
                    errors: x.errors,
                    p99_ms: p99(&x.latency, x.requests).map(|s| s * 1000.0),
                    polling: x.polling,
                    up,
                },
                None => Point {
                    t,
                    requests: 0,
                    rate: 0.0,
                    errors: 0,
                    p99_ms: None,
                    polling: 0,
                    up,
                },
            });
            t += BUCKET_SECS;
        }
        out
    }
}

/// The upper bound of the histogram step holding the 99th percentile.
fn p99(h: &[u32; STEPS], n: u64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let rank = (n as f64 * 0.99).ceil() as u64;
    let mut seen = 0u64;
    for (i, c) in h.iter().enumerate() {
        seen += u64::from(*c);
        if seen >= rank {
            return Some(step_upper(i));
        }
    }
    Some(step_upper(STEPS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_rates_errors_and_p99() {
        let h = History::default();
        let t0 = 1_800_000_000 - 1_800_000_000 % BUCKET_SECS;
        for i in 0..100 {
            h.observe(
                t0 + 1,
                if i == 99 { 2.0 } else { 0.001 },
                i % 10 == 0,
                false,
            );
        }
        h.observe(t0 + BUCKET_SECS, 0.5, false, false);
        let s = h.series(t0 + BUCKET_SECS + 9);
        assert_eq!(s.len(), BUCKETS);
        let last = &s[BUCKETS - 1];
        let prev = &s[BUCKETS - 2];
        assert_eq!((prev.t, prev.requests, prev.errors), (t0, 100, 10));
        assert!((prev.rate - 100.0 / 30.0).abs() < 1e-9);
        // 99 of 100 at 1 ms: the p99 is the 1 ms step (within one step's width).
        let p = prev.p99_ms.unwrap();
        assert!((1.0..1.2).contains(&p), "{p}");
        assert_eq!(last.requests, 1);
        assert!((last.rate - 0.1).abs() < 1e-9, "{}", last.rate);
        assert!(s[0].p99_ms.is_none() && s[0].requests == 0);
    }

    #[test]
    fn old_buckets_fall_out_of_the_hour() {
        let h = History::default();
        h.observe(1000 * BUCKET_SECS, 0.01, false, false);
        let later = 1000 * BUCKET_SECS + BUCKET_SECS * BUCKETS as u64;
        h.observe(later, 0.01, true, false);
        let s = h.series(later);
        assert_eq!(s.iter().map(|p| p.requests).sum::<u64>(), 1);
        assert_eq!(s[BUCKETS - 1].errors, 1);
        assert_eq!(step_of(0.0), 0);
        assert_eq!(step_of(1e9), STEPS - 1);
        assert!(step_upper(STEPS - 1) > 60.0);
    }

    #[test]
    fn polling_is_counted_apart_and_time_before_start_is_no_data() {
        let t0 = 1_800_000_000 - 1_800_000_000 % BUCKET_SECS;
        let h = History::starting_at(t0 + 5);
        h.observe(t0 + 6, 0.001, false, false);
        for _ in 0..10 {
            h.observe(t0 + 7, 5.0, true, true);
        }
        let s = h.series(t0 + 29);
        let now = &s[BUCKETS - 1];
        assert_eq!((now.requests, now.errors, now.polling), (1, 0, 10));
        assert!(now.p99_ms.unwrap() < 2.0, "polling stays out of the p99");
        assert!(now.up, "the bucket the server started in has data");
        assert!(!s[BUCKETS - 2].up && !s[0].up, "before start: no data");
    }
}
