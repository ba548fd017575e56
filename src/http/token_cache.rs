//! The API tokens this server has verified, remembered so that a request with a known
//! token needs no database lookup: the lookup and its hand-off to a blocking thread
//! were a fifth of an article create's cost. An entry is trusted only within the
//! generation of users and tokens it was verified in (`db::auth_epoch`), so a token
//! revoked, a role lowered or a user disabled — by this server, the CLI or any other
//! process — is refused from the next request on. Expiry is checked on every use.
//! Invalid tokens are never remembered.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use super::auth::Principal;

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
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

/// A remembered token: who it is, and the token's id when its `last_used_at` is due to
/// be written (it is then marked as written).
pub struct Hit {
    pub principal: Principal,
    pub touch: Option<i64>,
}

impl TokenCache {
    /// The principal of the token whose secret hash is `secret_hash`, if it was verified
    /// in `generation` and has not expired by `now`. `touch_before`: a `last_used_at`
    /// older than this is due to be written again.
    pub fn get(
        &self,
        secret_hash: &str,
        generation: u64,
        now: &str,
        touch_before: &str,
    ) -> Option<Hit> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get_mut(secret_hash)?;
        if e.generation != generation || e.expires_at.as_deref().is_some_and(|at| at <= now) {
            entries.remove(secret_hash);
            return None;
        }
        let touch = e
            .last_used_at
            .as_deref()
            .is_none_or(|at| at < touch_before)
            .then(|| {
                e.last_used_at = Some(now.to_string());
                e.token_id
            });
        Some(Hit {
            principal: e.principal.clone(),
            touch,
        })
    }

    /// Remember a token verified against the database in `generation` (read before the
    /// lookup began).
    pub fn insert(
        &self,
        secret_hash: String,
        generation: u64,
        principal: Principal,
        token_id: i64,
        expires_at: Option<String>,
        last_used_at: Option<String>,
    ) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::db::users::User;
    use crate::http::auth::Via;

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

    const NOW: &str = "2026-06-01T12:00:00.000Z";
    const TOUCH_BEFORE: &str = "2026-06-01T11:59:00.000Z";

    #[test]
    fn only_the_generation_it_was_verified_in_and_never_after_expiry() {
        let cache = TokenCache::default();
        cache.insert(
            "h".into(),
            4,
            principal(),
            7,
            Some("2026-06-01T12:00:01.000Z".into()),
            Some(NOW.into()),
        );
        assert!(cache.get("other", 4, NOW, TOUCH_BEFORE).is_none());
        let hit = cache.get("h", 4, NOW, TOUCH_BEFORE).expect("remembered");
        assert_eq!(hit.principal.user.email, "a@b.example");
        assert_eq!(hit.touch, None, "used a moment ago");
        assert!(
            cache
                .get("h", 4, "2026-06-01T12:00:01.000Z", TOUCH_BEFORE)
                .is_none(),
            "expired at that instant"
        );
        cache.insert("h".into(), 4, principal(), 7, None, Some(NOW.into()));
        assert!(
            cache.get("h", 5, NOW, TOUCH_BEFORE).is_none(),
            "a new generation"
        );
        assert!(
            cache.get("h", 4, NOW, TOUCH_BEFORE).is_none(),
            "dropped once found stale"
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
            Some("2026-06-01T11:00:00.000Z".into()),
        );
        assert_eq!(cache.get("h", 1, NOW, TOUCH_BEFORE).unwrap().touch, Some(7));
        assert_eq!(cache.get("h", 1, NOW, TOUCH_BEFORE).unwrap().touch, None);
    }
}
