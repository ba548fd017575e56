//! Restore from the admin UI. A request is checked (the archive exists, is ours) and
//! written down (`backup::pending`), and the server is asked to restart; `serve` then
//! stops as for SIGTERM (in-flight requests drain, the database is checkpointed and
//! closed, the directory lock released), carries out the restore at its next start
//! with `appliance restore`'s code — verify completely into a staging directory, move
//! the live data aside (kept), swap, undo every step on a failure — and starts again
//! in the same process on whatever data is then live. The outcome is kept for the UI
//! and audited once the server is up.

use crate::auth::audit::Actor;
use crate::backup::pending::{self, Outcome, Request};
use crate::backup::restore::{self, Options};
use crate::backup::signing::{Location, Trust};
use crate::backup::{self, BackupError};
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::state::AppState;

/// In debug builds (the tests), a restore asked for through the UI fails on purpose at
/// the step this variable names (one of `backup::restore::STEPS`).
pub const FAIL_AT_ENV: &str = "APPLIANCE_TEST_RESTORE_FAIL_AT";

/// Ask for `archive` to be restored: recorded, audited, and the server restarts.
pub async fn request(
    state: &AppState,
    archive: &str,
    actor: &Actor,
) -> Result<Request, BackupError> {
    backup::resolve(&state.config().backups_dir(), archive)?;
    let r = Request {
        archive: archive.to_string(),
        requested_by: actor.name.clone(),
        requested_at: crate::clock::now(),
    };
    let dir = state.data_dir().clone();
    let written = r.clone();
    tokio::task::spawn_blocking(move || pending::request(&dir, &written))
        .await
        .map_err(|e| BackupError::Other(e.to_string()))??;
    crate::auth::audit::write(
        &state.ledger(),
        actor
            .event("backup.restore_request", crate::db::audit::Outcome::Success)
            .target(archive),
    )
    .await;
    tracing::warn!(archive, by = %r.requested_by, "restore requested: restarting to carry it out");
    state.restart().ask();
    Ok(r)
}

/// At `serve`'s start, before anything is opened: carry out a requested restore, if
/// there is one. None when there was none.
pub fn run_pending(config: &Config) -> Option<Outcome> {
    let data_dir = DataDir::new(&config.data_dir);
    let r = match pending::take(&data_dir) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the restore request; not restoring");
            return None;
        }
    };
    tracing::warn!(archive = %r.archive, by = %r.requested_by, "restoring as requested in the admin UI");
    // The restore may outlast systemd's watchdog and start timeouts: keep them extended.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keepalive = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                crate::ops::watchdog::extend(30);
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        })
    };
    let result = (|| {
        let path = backup::resolve(&config.backups_dir(), &r.archive)?;
        let key = Location::of(&config.backup, &config.data_dir).load()?;
        let opts = Options {
            dry_run: false,
            trust: Trust::strict(key),
            margin: config.backup.min_free_margin_bytes,
            adopt_key: None,
            fail_at: if cfg!(debug_assertions) {
                std::env::var(FAIL_AT_ENV).ok()
            } else {
                None
            },
        };
        restore::restore(&data_dir, &config.backups_dir(), &path, &opts, None)
    })();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = keepalive.join();
    let outcome = Outcome {
        archive: r.archive,
        requested_by: r.requested_by,
        requested_at: r.requested_at,
        finished_at: crate::clock::now(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(BackupError::brief),
        moved_aside: result.ok().and_then(|rep| rep.moved_aside),
    };
    match &outcome.error {
        None => {
            tracing::warn!(archive = %outcome.archive, aside = ?outcome.moved_aside, "restored")
        }
        Some(e) => {
            tracing::error!(archive = %outcome.archive, error = %e, "restore failed; the data is as it was")
        }
    }
    if let Err(e) = pending::record(&data_dir, &outcome) {
        tracing::error!(error = %e, "cannot record the restore's outcome");
    }
    Some(outcome)
}

/// Once the server runs again: audit how the restore ended (in the database live now).
pub async fn audit_outcome(state: &AppState, o: &Outcome) {
    let actor = Actor {
        id: None,
        name: o.requested_by.clone(),
        role: None,
        ip: None,
        request_id: None,
    };
    let outcome = if o.ok {
        crate::db::audit::Outcome::Success
    } else {
        crate::db::audit::Outcome::Failure
    };
    crate::auth::audit::write(
        &state.ledger(),
        actor
            .event("backup.restore", outcome)
            .target(&o.archive)
            .details(serde_json::json!({"error": o.error, "moved_aside": o.moved_aside})),
    )
    .await;
}
