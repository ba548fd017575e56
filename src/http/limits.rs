//! Rate limits per client IP (GCRA from the `governor` crate, in memory): a general
//! tier on every request, and stricter tiers for sign-in (per IP and per account, with
//! a logged lockout) and for expensive routes. The client IP is the peer address, or
//! the `X-Forwarded-For` entry added by a configured trusted proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimitConfig, SecurityConfig};

/// Which limit a route counts against (besides the general one every request pays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    General,
    /// Sign-in, setup, password reset.
    Auth,
    /// Search, bulk ingest, backup trigger, index rebuild/verify.
    Expensive,
}

/// A budget that only failures spend (OWASP: count failed attempts, not successes): a
/// key that spent it all is blocked until it refills, and asked before each attempt.
struct FailureBudget<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    blocked: std::sync::Mutex<std::collections::HashMap<K, std::time::Instant>>,
}

impl<K: std::hash::Hash + Eq + Clone> FailureBudget<K> {
    /// `per_window` failures per 15 minutes: that many are answered, the next attempt is
    /// refused until one has refilled.
    fn new(per_window: u32) -> Self {
        let n = per_window.max(1);
        let window = Duration::from_secs(15 * 60);
        FailureBudget {
            limiter: RateLimiter::keyed(quota(window / n, n.saturating_sub(1).max(1))),
            blocked: Default::default(),
        }
    }
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, std::time::Instant>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// How long `key` must still wait, if it is blocked.
    fn blocked(&self, key: &K) -> Option<Duration> {
        let now = std::time::Instant::now();
        self.map()
            .get(key)
            .filter(|until| **until > now)
            .map(|until| *until - now)
    }
    /// Spend one for a failure; `Some((wait, newly))` when that used the budget up
    /// (`newly`: the key was not blocked already).
    fn fail(&self, key: K) -> Option<(Duration, bool)> {
        let not_until = self.limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let now = std::time::Instant::now();
        let mut map = self.map();
        let newly = map.get(&key).is_none_or(|until| *until <= now);
        map.insert(key, now + wait);
        Some((wait, newly))
    }
    fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = std::time::Instant::now();
        self.map().retain(|_, until| *until > now);
    }
}

/// The limiters of one server.
pub struct Limiters {
    enabled: bool,
    general: DefaultKeyedRateLimiter<IpAddr>,
    expensive: DefaultKeyedRateLimiter<IpAddr>,
    /// Failed sign-in-tier attempts (sign-in, setup, reset, password change) per address.
    auth: FailureBudget<IpAddr>,
    /// Failed sign-ins per account (lowercased email); spent, the account is locked out.
    accounts: FailureBudget<String>,
    /// Failed sign-ins per account from one of its trusted addresses (see
    /// `sessions::trusted_attempt`): a budget of their own, which failures from
    /// elsewhere cannot spend.
    trusted: FailureBudget<(String, IpAddr)>,
    /// Sign-in-tier refusals per address since their last audit entry.
    refusals: std::sync::Mutex<std::collections::HashMap<IpAddr, Tally>>,
    checks: AtomicU64,
}

/// At most one audit entry per address per this long for refused sign-in requests.
pub const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(600);
/// Addresses whose refusals are tallied at once (beyond: the quietest are forgotten).
const MAX_TALLIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Tally {
    since_entry: u64,
    last_entry: Option<std::time::Instant>,
}

fn quota(per: Duration, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiters {
    pub fn new(c: &RateLimitConfig) -> Limiters {
        Limiters {
            enabled: c.enabled,
            general: RateLimiter::keyed(quota(
                Duration::from_secs(1) / c.general_per_second.max(1),
                c.general_burst,
            )),
            auth: FailureBudget::new(c.login_per_15_min),
            expensive: RateLimiter::keyed(quota(
                Duration::from_secs(60) / c.expensive_per_minute.max(1),
                c.expensive_burst,
            )),
            accounts: FailureBudget::new(c.login_per_15_min),
            trusted: FailureBudget::new(c.login_per_15_min),
            refusals: Default::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Count a request of `tier` from `ip`; `Err(retry after)` when over the limit. The
    /// sign-in tier is not counted here: only its failures are ([`Limiters::auth_failed`]);
    /// this says whether the address ran out of them.
    pub fn check(&self, tier: Tier, ip: IpAddr) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        self.housekeeping();
        let limiter = match tier {
            Tier::General => &self.general,
            Tier::Auth => return self.auth.blocked(&ip).map_or(Ok(()), Err),
            Tier::Expensive => &self.expensive,
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// A sign-in-tier request from `ip` failed (wrong password, token or link).
    pub fn auth_failed(&self, ip: IpAddr) {
        if self.enabled {
            self.auth.fail(ip);
        }
    }

    /// How long the account `email` is still locked out, if it is.
    pub fn account_locked(&self, email: &str) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.accounts.blocked(&email.trim().to_lowercase())
    }

    /// A sign-in to `email` failed. `Some((retry after, newly locked))` when that locked
    /// the account out (`newly locked`: the first time, to log and audit once).
    pub fn account_failed(&self, email: &str) -> Option<(Duration, bool)> {
        if !self.enabled {
            return None;
        }
        self.accounts.fail(email.trim().to_lowercase())
    }

    /// How long `ip`, a trusted address of the locked-out account `email`, must still
    /// wait, if it spent its own budget.
    pub fn trusted_blocked(&self, email: &str, ip: IpAddr) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.trusted.blocked(&(email.trim().to_lowercase(), ip))
    }

    /// A sign-in to `email` from its trusted address `ip` failed.
    pub fn trusted_failed(&self, email: &str, ip: IpAddr) {
        if self.enabled {
            self.trusted.fail((email.trim().to_lowercase(), ip));
        }
    }

    /// Count a refused sign-in-tier request from `ip`. `Some(n)` when an audit entry is
    /// due, covering `n` refusals: the first refusal, then the first one at least
    /// [`REFUSAL_AUDIT_EVERY`] after the previous entry (with all refused since).
    pub fn note_refusal(&self, ip: IpAddr) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut map = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_TALLIES && !map.contains_key(&ip) {
            map.retain(|_, t| {
                t.last_entry
                    .is_some_and(|at| now.duration_since(at) < REFUSAL_AUDIT_EVERY)
            });
        }
        let t = map.entry(ip).or_insert(Tally {
            since_entry: 0,
            last_entry: None,
        });
        t.since_entry += 1;
        let due = t
            .last_entry
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_AUDIT_EVERY);
        if !due {
            return None;
        }
        let n = t.since_entry;
        t.since_entry = 0;
        t.last_entry = Some(now);
        Some(n)
    }

    /// Keyed limiters keep a cell per key; forget idle keys now and then so a scan
    /// from many addresses cannot grow memory without bound.
    fn housekeeping(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in [&self.general, &self.expensive] {
                l.retain_recent();
                l.shrink_to_fit();
            }
            self.auth.housekeeping();
            self.accounts.housekeeping();
            self.trusted.housekeeping();
        }
    }
}

/// The client address of a request: the peer, or when the peer is a trusted proxy the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(parts: &Parts, security: &SecurityConfig) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    forwarded_ip(peer, &parts.headers, &security.trusted_proxies)
}

fn forwarded_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.7".parse().expect("ip");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().expect("hv"),
        );
        assert_eq!(
            forwarded_ip(proxy, &h, &[proxy]),
            client,
            "right-most untrusted hop"
        );
        assert_eq!(
            forwarded_ip(client, &h, &[proxy]),
            client,
            "spoofed header ignored"
        );
        assert_eq!(forwarded_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }

    #[test]
    fn only_failures_spend_the_login_budget_and_a_lockout_is_reported_once() {
        let l = Limiters::new(&RateLimitConfig {
            login_per_15_min: 3,
            ..RateLimitConfig::default()
        });
        // Three failures are answered; the third uses the budget up.
        assert!(l.account_locked("A@x.org").is_none());
        assert!(l.account_failed("A@x.org").is_none());
        assert!(l.account_failed("a@X.org").is_none());
        let (wait, newly) = l.account_failed("a@x.org").expect("locked now");
        assert!(newly && wait > Duration::from_secs(200), "{wait:?}");
        assert!(l.account_locked("A@X.ORG").is_some(), "case-insensitive");
        assert!(
            !l.account_failed("a@x.org").expect("still locked").1,
            "reported once"
        );
        assert!(l.account_locked("b@x.org").is_none(), "per account");
        // Per address, likewise; checking never spends anything.
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check(Tier::Auth, ip).is_ok());
        }
        for _ in 0..3 {
            assert!(l.check(Tier::Auth, ip).is_ok());
            l.auth_failed(ip);
        }
        assert!(l.check(Tier::Auth, ip).is_err());
    }
}
