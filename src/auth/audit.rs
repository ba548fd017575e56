//! The audit writer: who acted ([`Actor`]: a signed-in user or token, the CLI, or the
//! server's own scheduled work) and the one way a standalone audit entry is written,
//! from the server or a command. (Operations that change users write their entry inside
//! their own transaction, in `auth::ops`.)

use std::sync::LazyLock;

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::db::audit::{Event, Outcome};
use crate::db::ledger::Ledger;

use super::Role;

/// The key of [`account_target`]'s hash: random per process, so the same unparsable
/// input maps to the same name while the server runs and to nothing anyone can invert
/// with a dictionary afterwards.
static TARGET_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
});

/// What the audit log (and the log) records for the account named at sign-in: the
/// address when the input is one (trimmed, at most 254 characters), else a keyed hash
/// (`unparsed:` and 16 hex digits). Never the raw input: a password typed into the
/// email field, or a megabyte of junk from an anonymous caller, never reaches a row.
pub fn account_target(raw: &str) -> String {
    match super::parse_email("email", raw) {
        Ok(email) => email,
        Err(_) => {
            let mut h = Sha256::new();
            h.update(*TARGET_KEY);
            h.update(raw.as_bytes());
            format!("unparsed:{}", &hex::encode(h.finalize())[..16])
        }
    }
}

/// Who acts: the audit entry's actor fields, filled in by the CLI or the HTTP caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<i64>,
    pub name: String,
    pub role: Option<Role>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The CLI acts with full rights (it has the database file).
    pub fn cli() -> Actor {
        Actor {
            id: None,
            name: crate::db::audit::cli_actor(),
            role: Some(Role::Admin),
            ip: None,
            request_id: None,
        }
    }
    /// Scheduled work inside `serve` (backups, cleanup).
    pub fn system() -> Actor {
        Actor {
            id: None,
            name: "system".into(),
            role: None,
            ip: None,
            request_id: None,
        }
    }
    pub fn event(&self, action: &'static str, outcome: Outcome) -> Event {
        let mut e = Event::new(self.name.clone(), action, outcome);
        e.actor_id = self.id;
        e.ip = self.ip.clone();
        e.request_id = self.request_id.clone();
        e
    }
}

/// Append `event` to the audit log in its own transaction. A failure is reported, not
/// returned: the action it describes already happened or was refused. A command says
/// so on stderr (and nothing when the database has no audit table yet); the server logs.
pub async fn write(ledger: &Ledger, event: Event) {
    let action = event.action;
    match (ledger.audit(event).await, ledger) {
        (Ok(_), _) => {}
        (Err(e), Ledger::Direct { .. }) => eprintln!("warning: cannot write the audit log: {e}"),
        (Err(e), Ledger::Server(_)) => {
            tracing::error!(action, error = %e, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_target_is_the_address_or_a_keyed_hash_never_the_input() {
        assert_eq!(account_target(" Ada@Example.org "), "Ada@Example.org");
        let password = account_target("correct horse battery staple");
        assert!(
            password.starts_with("unparsed:") && password.len() == 25,
            "{password}"
        );
        assert!(!password.contains("horse"));
        assert_eq!(password, account_target("correct horse battery staple"));
        assert_ne!(password, account_target("correct horse battery staplf"));
        let huge = account_target(&format!("{}@example.org", "a".repeat(1_100_000)));
        assert!(huge.starts_with("unparsed:") && huge.len() == 25);
    }
}
