//! Who people are and what they may do, without HTTP: roles, email and password rules,
//! argon2id hashing, random secrets (session ids, API tokens, reset links, the setup
//! token) and their storage form. Storage is in `crate::db::users`, the HTTP side
//! (cookies, CSRF, rate limits, the per-route access table) in `crate::http` (`access`, `sessions`, `account`, `tokens`).

pub mod audit;
pub mod common_passwords;
pub mod ops;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::validate::FieldError;

/// Shortest password accepted (OWASP ASVS 2.1.1 asks for at least 12).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted: argon2 takes any length, but a megabyte "password" is a
/// cheap way to burn CPU (ASVS 2.1.2 allows at least 64; 256 leaves room for passphrases).
pub const MAX_PASSWORD_CHARS: usize = 256;
pub use crate::domain::TOKEN_PREFIX;

pub use crate::domain::Role;

/// A syntactically plausible email address, trimmed; case is kept for display and
/// ignored for comparison (the column is `COLLATE NOCASE`).
pub fn parse_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim();
    let bad = |m: &str| Err(FieldError::new(field, m));
    if email.is_empty() {
        return bad("is required");
    }
    if email.len() > 254 {
        return bad("is longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return bad("is not an email address (no @)");
    };
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return bad("is not an email address");
    }
    Ok(email.to_string())
}

/// The password policy: 12 to 256 characters, not one of the common passwords, not the
/// email address. The message names the rule that failed, never the password.
pub fn check_password(field: &str, password: &str, email: Option<&str>) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD_CHARS} characters long"),
        ));
    }
    if common_passwords::is_common(password) {
        return Err(FieldError::new(
            field,
            "is one of the most common passwords; choose another",
        ));
    }
    if email.is_some_and(|e| password.trim().eq_ignore_ascii_case(e.trim())) {
        return Err(FieldError::new(field, "must not be the email address"));
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, argon2::Error> {
    // OWASP Password Storage Cheat Sheet, argon2id: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password (argon2id, random salt) into a PHC string. Takes ~20–50 ms of CPU
/// and 19 MiB: call it from a blocking thread, never on the async executor.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = hasher()
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string (constant time in the password).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match hasher() {
        Ok(h) => h.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the account does not exist, so that a login for an
/// unknown email costs the same time as one for a known email with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("not a password anyone has: timing equaliser").unwrap_or_default()
    })
}

/// 256 random bits from the thread-local CSPRNG (ChaCha, seeded by the OS), as hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a high-entropy secret (session id, API token, reset link): its
/// SHA-256. A slow hash is not needed for 256-bit random values; it is for passwords.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compare two secrets (or their hashes) in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new API token: `apl_<prefix>_<secret>` where the 12-hex-digit prefix is public
/// (the lookup key, shown in listings) and the whole token is stored hashed.
pub struct NewToken {
    pub token: String,
    pub prefix: String,
}

pub fn new_api_token() -> NewToken {
    let secret = random_secret();
    let prefix = secret[..12].to_string();
    NewToken {
        token: format!("{TOKEN_PREFIX}{prefix}_{}", &secret[12..]),
        prefix,
    }
}

/// The public prefix of a presented API token, or None if it has not the token shape.
pub fn token_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12
        && secret.len() == 52
        && rest.bytes().all(|b| b == b'_' || b.is_ascii_hexdigit()))
    .then_some(prefix)
}

/// The one-time setup token `serve` prints while no user exists: it lets the first
/// admin be created through the API or the UI. Valid until used or the process ends.
#[derive(Default)]
pub struct SetupToken(std::sync::Mutex<Option<String>>);

impl SetupToken {
    /// Make a new token (replacing any) and return it for printing.
    pub fn issue(&self) -> String {
        let token = random_secret();
        *self.lock() = Some(token.clone());
        token
    }
    /// Whether a token is outstanding.
    pub fn is_active(&self) -> bool {
        self.lock().is_some()
    }
    /// Check a presented token (constant time); does not consume it.
    pub fn matches(&self, presented: &str) -> bool {
        self.lock()
            .as_deref()
            .is_some_and(|t| secrets_equal(t, presented))
    }
    /// The outstanding token (tests read it as a person reads the log).
    pub fn current(&self) -> Option<String> {
        self.lock().clone()
    }
    /// Invalidate the token (after the first admin exists).
    pub fn consume(&self) {
        *self.lock() = None;
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Viewer);
        assert_eq!("editor".parse::<Role>(), Ok(Role::Editor));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn password_policy() {
        assert!(check_password("password", "short", None).is_err());
        assert!(
            check_password("password", "password1234", None).is_err(),
            "common"
        );
        assert!(
            check_password("password", "Password1234", None).is_err(),
            "case-insensitive"
        );
        assert!(check_password("password", "a@example.org", Some("A@example.org")).is_err());
        assert!(check_password("password", "correct horse battery", None).is_ok());
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert!(check_password("password", &long, None).is_err());
    }

    #[test]
    fn hashing_round_trip_uses_argon2id_owasp_parameters() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterz", &phc));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(
            phc,
            hash_password("correct horse battery").expect("hash"),
            "salted"
        );
    }

    #[test]
    fn tokens_have_a_public_prefix_and_a_secret() {
        let t = new_api_token();
        assert_eq!(token_prefix(&t.token), Some(t.prefix.as_str()));
        assert_eq!(t.token.len(), 4 + 12 + 1 + 52);
        assert_eq!(token_prefix("apl_short_x"), None);
        assert_eq!(token_prefix(&t.token.replace("apl_", "xyz_")), None);
        assert_ne!(new_api_token().token, t.token);
    }

    #[test]
    fn constant_time_equality() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email("email", " A@b.org ").expect("ok"), "A@b.org");
        for bad in ["", "ab.org", "a@b", "@b.org", "a b@c.org", "a@.org"] {
            assert!(parse_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn setup_token_lifecycle() {
        let s = SetupToken::default();
        assert!(!s.is_active() && !s.matches(""));
        let t = s.issue();
        assert!(s.matches(&t) && !s.matches("nope"));
        s.consume();
        assert!(!s.matches(&t));
    }
}
