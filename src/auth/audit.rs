//! The audit writer: who acted ([`Actor`]: a signed-in user or token, the CLI, or the
//! server's own scheduled work) and the one way a standalone audit entry is written,
//! from the server or a command. (Operations that change users write their entry inside
//! their own transaction, in `auth::ops`.)

use crate::db::audit::{Event, Outcome};
use crate::db::ledger::Ledger;

use super::Role;

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
