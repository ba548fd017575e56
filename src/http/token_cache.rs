//! The API tokens this server has verified, remembered so that a request with a known
//! token needs no database lookup (without the lookup and its hand-off to a blocking
//! thread, article creates ran 15–25% faster). An entry is trusted only within the
//! generation of users and tokens it was verified in (`db::auth_epoch`), so a token
//! revoked, a role lowered or a user disabled — by this server, the CLI or any other
//! process — is refused from the next request on. Expiry is checked on every use.
//! Invalid tokens are never remembered.

use std::sync::Mutex;

use rustc_hash::FxHashMap;
use time::{Duration, OffsetDateTime};

use super::caller::Principal;

/// Most tokens remembered; beyond that the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct TokenCache {
    /// By the token's secret hash.
    entries: Mutex<FxHashMap<String, Entry>>,
}

struct Entry {
    principal: Principal,
    generation: u64,
    token_id: i64,
    expires_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
}

/// A remembered token: who it is, and the token's id when its `last_used_at` is due to
/// be written (it is then marked as written).
pub struct Hit {
    pub principal: Principal,
    pub touch: Option<i64>,
}

impl TokenCache {
    /// The principal of the token whose secret hash is `secret_hash`, if it was verified
    /// in `generation` and has not expired by `now`. Its last use is due to be written
    /// when it is older than `touch_every`.
    pub fn get(
        &self,
        secret_hash: &str,
        generation: u64,
        now: OffsetDateTime,
        touch_every: Duration,
    ) -> Option<Hit> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get_mut(secret_hash)?;
        if e.generation != generation || e.expires_at.is_some_and(|at| at <= now) {
            entries.remove(secret_hash);
            return None;
        }
        let touch = e
            .last_used_at
            .is_none_or(|at| at < now - touch_every)
            .then(|| {
                e.last_used_at = Some(now);
                e.token_id
            });
        Some(Hit {
            principal: e.principal.clone(),
            touch,
        })
    }

    /// Remember a token verified against the database in `generation` (read before the
    /// lookup began), with its stored expiry and last use. A time that does not parse is
    /// not remembered at all.
    pub fn insert(
        &self,
        secret_hash: String,
        generation: u64,
        principal: Principal,
        token_id: i64,
        expires_at: Option<&str>,
        last_used_at: Option<&str>,
    ) {
        let (Some(expires_at), Some(last_used_at)) = (stored(expires_at), stored(last_used_at))
        else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&secret_hash) {
            entries.clear();
        }
        entries.insert(
            secret_hash,
            Entry {
                principal,
                generation,
                token_id,
                expires_at,
                last_used_at,
            },
        );
    }
}

/// An optional stored time: `None` when it is there but does not parse.
fn stored(t: Option<&str>) -> Option<Option<OffsetDateTime>> {
    match t {
        None => Some(None),
        Some(t) => crate::clock::parse(t).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::db::users::User;
    use crate::http::caller::Via;

    fn principal() -> Principal {
        Principal {
            user: User {
                id: 1,
                email: "a@b.example".into(),
                display_name: String::new(),
                role: Role::Editor,
                disabled: false,
                password_set: true,
                created_at: "2026-01-01T00:00:00.000Z".into(),
                updated_at: "2026-01-01T00:00:00.000Z".into(),
                last_login_at: None,
            },
            role: Role::Editor,
            via: Via::Token {
                id: 7,
                prefix: "abc".into(),
            },
        }
    }

    fn at(t: &str) -> OffsetDateTime {
        crate::clock::parse(t).unwrap()
    }

    const NOW: &str = "2026-06-01T12:00:00.000Z";
    const MINUTE: Duration = Duration::minutes(1);

    #[test]
    fn only_the_generation_it_was_verified_in_and_never_after_expiry() {
        let cache = TokenCache::default();
        cache.insert(
            "h".into(),
            4,
            principal(),
            7,
            Some("2026-06-01T12:00:01.000Z"),
            Some(NOW),
        );
        assert!(cache.get("other", 4, at(NOW), MINUTE).is_none());
        let hit = cache.get("h", 4, at(NOW), MINUTE).expect("remembered");
        assert_eq!(hit.principal.user.email, "a@b.example");
        assert_eq!(hit.touch, None, "used a moment ago");
        assert!(
            cache
                .get("h", 4, at("2026-06-01T12:00:01.000Z"), MINUTE)
                .is_none(),
            "expired at that instant"
        );
        cache.insert("h".into(), 4, principal(), 7, None, Some(NOW));
        assert!(
            cache.get("h", 5, at(NOW), MINUTE).is_none(),
            "a new generation"
        );
        assert!(
            cache.get("h", 4, at(NOW), MINUTE).is_none(),
            "dropped once found stale"
        );
        cache.insert("g".into(), 4, principal(), 7, Some("garbage"), None);
        assert!(
            cache.get("g", 4, at(NOW), MINUTE).is_none(),
            "an expiry that does not parse is not remembered"
        );
    }

    #[test]
    fn last_use_is_due_once_per_interval() {
        let cache = TokenCache::default();
        cache.insert(
            "h".into(),
            1,
            principal(),
            7,
            None,
            Some("2026-06-01T11:00:00.000Z"),
        );
        assert_eq!(cache.get("h", 1, at(NOW), MINUTE).unwrap().touch, Some(7));
        assert_eq!(cache.get("h", 1, at(NOW), MINUTE).unwrap().touch, None);
    }
}
