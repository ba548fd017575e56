//! Backups inside `serve`: one run (create, record, verify, record, prune, checkpoint)
//! shared by the scheduler and `POST /api/admin/backups`, the scheduler task (a cron
//! expression in UTC), and what `/readyz` says about backups. The blocking library
//! functions run on tokio's blocking threads; bookkeeping goes through the writer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::ops::Actor;
use crate::db::audit;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::retention::{self, Policy};
use super::snapshot::{self, CreateOptions, Created};
use super::{BackupError, BackupLock, Trigger};
use crate::db::backups::{self as store, Run, Verification};
use crate::db::{Checkpoint, DbError};
use crate::state::AppState;

/// The backup being written right now, if any (for `GET /api/admin/backups`), with its
/// step (`writing`, `verifying`, `pruning`) and the bytes of that step done so far.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub step: &'static str,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Progress of the running backup, updated from the blocking threads doing the work.
#[derive(Debug, Default)]
pub struct RunProgress {
    step: AtomicU8,
    done: AtomicU64,
    total: AtomicU64,
}

const STEPS: [&str; 3] = ["writing", "verifying", "pruning"];

impl RunProgress {
    fn step(&self, i: u8) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.step.store(i, Ordering::Relaxed);
    }
    fn report(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
}

/// In-process state of backups (the durable part is in the database).
#[derive(Debug, Default)]
pub struct BackupState {
    running: Mutex<Option<Running>>,
    progress: Arc<RunProgress>,
}

impl BackupState {
    pub fn running(&self) -> Option<Running> {
        let mut r = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let p = &self.progress;
        r.step = STEPS
            .get(usize::from(p.step.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or("writing");
        r.bytes_done = p.done.load(Ordering::Relaxed);
        r.bytes_total = p.total.load(Ordering::Relaxed);
        Some(r)
    }
    fn set_running(&self, r: Option<Running>) {
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = r;
    }
}

/// Take the backup lock now (so a second request is refused at once), for [`run`].
pub async fn acquire(state: &AppState) -> Result<BackupLock, BackupError> {
    let dir = state.config().backups_dir();
    tokio::task::spawn_blocking(move || BackupLock::acquire(&dir))
        .await
        .map_err(|e| BackupError::Other(e.to_string()))?
}

/// Outcome of one run: the archive, and whether it verified.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub created: Created,
    pub verified: Result<(), String>,
    pub pruned: Vec<String>,
}

/// Create a backup, record the run, verify the archive, record that, apply retention,
/// and checkpoint the WAL that grew while the snapshot was held.
pub async fn run(
    state: &AppState,
    lock: BackupLock,
    trigger: Trigger,
    actor: Actor,
) -> Result<Outcome, BackupError> {
    let started_at = OffsetDateTime::now_utc();
    state.backups().progress.step(0);
    state.backups().set_running(Some(Running {
        trigger,
        started_at,
        step: STEPS[0],
        bytes_done: 0,
        bytes_total: 0,
    }));
    let res = run_inner(state, lock, trigger, started_at).await;
    state.backups().set_running(None);
    let event = match &res {
        Ok(o) => actor
            .event("backup.create", audit::Outcome::Success)
            .target(&o.created.name)
            .details(serde_json::json!({
                "trigger": trigger.as_str(),
                "bytes": o.created.size_bytes,
                "verified": o.verified.is_ok(),
                "pruned": o.pruned,
            })),
        Err(e) => actor
            .event("backup.create", audit::Outcome::Failure)
            .details(serde_json::json!({"trigger": trigger.as_str(), "error": e.to_string()})),
    };
    crate::http::auth::audit(state, event).await;
    res
}

/// The audit actor of scheduled work.
pub fn system_actor() -> Actor {
    Actor {
        id: None,
        name: "system".into(),
        role: None,
        ip: None,
        request_id: None,
    }
}

async fn run_inner(
    state: &AppState,
    lock: BackupLock,
    trigger: Trigger,
    started_at: OffsetDateTime,
) -> Result<Outcome, BackupError> {
    let cfg = state.config().backup.clone();
    let previous_ratio = state
        .db()
        .read(store::last_success)
        .await?
        .and_then(|r| ratio(&r));
    let data_dir = state.data_dir().clone();
    let progress = state.backups().progress.clone();
    let created = tokio::task::spawn_blocking(move || {
        let report = |done: u64, total: u64| progress.report(done, total);
        let opts = CreateOptions {
            trigger,
            compression_level: cfg.compression_level,
            min_free_margin_bytes: cfg.min_free_margin_bytes,
            previous_ratio,
            progress: Some(&report),
        };
        let res = snapshot::create(&lock, &data_dir, &opts);
        (lock, res)
    })
    .await
    .map_err(|e| BackupError::Other(e.to_string()))?;
    let (lock, created) = created;
    let run = run_record(&created, trigger, started_at);
    state
        .db()
        .write(move |c| store::record_run(c, &run))
        .await?;
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            use crate::telemetry::errors::{Category, ErrorEvent, Severity};
            state.errors().record(ErrorEvent::new(
                Category::System,
                Severity::High,
                "backup",
                format!("backup.create ({})", trigger.as_str()),
                e.to_string(),
            ));
            tracing::error!(error = %e, trigger = trigger.as_str(), "backup failed");
            return Err(e);
        }
    };
    tracing::info!(
        archive = %created.name,
        bytes = created.size_bytes,
        ms = created.duration.as_millis() as u64,
        trigger = trigger.as_str(),
        "backup written"
    );
    state.backups().progress.step(1);
    let verified = verify_and_record(state, &created.name).await?;
    state.backups().progress.step(2);
    let pruned = prune(state, &lock).await?;
    // The snapshot kept checkpoints from passing it; catch up now, off the request path.
    if let Err(e) = state.db().checkpoint(Checkpoint::Passive).await {
        tracing::warn!(error = %e, "checkpoint after backup failed");
    }
    drop(lock);
    Ok(Outcome {
        created,
        verified,
        pruned,
    })
}

/// What to record of an attempt that started at `started_at` (the CLI records the same).
pub fn run_record(
    result: &Result<Created, BackupError>,
    trigger: Trigger,
    started_at: OffsetDateTime,
) -> Run {
    match result {
        Ok(c) => Run {
            name: c.name.clone(),
            trigger: trigger.as_str().into(),
            started_at: crate::clock::format(c.started_at),
            duration_ms: i64::try_from(c.duration.as_millis()).unwrap_or(i64::MAX),
            size_bytes: i64::try_from(c.size_bytes).ok(),
            source_bytes: i64::try_from(c.manifest.total_bytes()).ok(),
            ok: true,
            error: None,
        },
        Err(e) => Run {
            name: super::archive_name(started_at, trigger),
            trigger: trigger.as_str().into(),
            started_at: crate::clock::format(started_at),
            duration_ms: i64::try_from(
                (OffsetDateTime::now_utc() - started_at).whole_milliseconds(),
            )
            .unwrap_or(0),
            size_bytes: None,
            source_bytes: None,
            ok: false,
            error: Some(e.to_string()),
        },
    }
}

/// Archive size / source size of a recorded run.
pub fn ratio(r: &Run) -> Option<f64> {
    match (r.size_bytes, r.source_bytes) {
        (Some(a), Some(s)) if s > 0 => Some(a as f64 / s as f64),
        _ => None,
    }
}

/// Verify an archive of the backups dir and record the result.
pub async fn verify_and_record(
    state: &AppState,
    name: &str,
) -> Result<Result<(), String>, BackupError> {
    let dir = state.config().backups_dir();
    let path = super::resolve(&dir, name)?;
    // Progress shows in `running` while a run verifies its archive (ignored otherwise).
    let progress = state.backups().progress.clone();
    let res = tokio::task::spawn_blocking(move || {
        let report = |done: u64, total: u64| progress.report(done, total);
        super::verify::verify(&path, &dir, Some(&report))
    })
    .await
    .map_err(|e| BackupError::Other(e.to_string()))?;
    let outcome = res.map(|_| ()).map_err(|e| e.to_string());
    if let Err(e) = &outcome {
        tracing::error!(archive = %name, error = %e, "backup verification failed");
        use crate::telemetry::errors::{Category, ErrorEvent, Severity};
        state.errors().record(ErrorEvent::new(
            Category::System,
            Severity::High,
            "backup",
            "backup.verify",
            format!("{name}: {e}"),
        ));
    }
    let record = Verification {
        verified_at: crate::clock::now(),
        ok: outcome.is_ok(),
        error: outcome.clone().err(),
    };
    let name = name.to_string();
    state
        .db()
        .write(move |c| store::record_verification(c, &name, &record))
        .await?;
    Ok(outcome)
}

async fn prune(state: &AppState, _lock: &BackupLock) -> Result<Vec<String>, BackupError> {
    let verified = verified_names(state).await?;
    let dir = state.config().backups_dir();
    let policy = Policy::from(&state.config().backup);
    let plan =
        tokio::task::spawn_blocking(move || retention::prune(&dir, policy, &verified, false))
            .await
            .map_err(|e| BackupError::Other(e.to_string()))??;
    Ok(plan.delete)
}

/// Names of archives whose last verification succeeded.
pub async fn verified_names(state: &AppState) -> Result<HashSet<String>, DbError> {
    let v = state.db().read(store::verifications).await?;
    Ok(v.into_iter()
        .filter(|(_, v)| v.ok)
        .map(|(n, _)| n)
        .collect())
}

/// The next time the schedule fires after `after`, if there is a schedule.
pub fn next_run(state: &AppState, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let cron = state.config().backup.cron().ok().flatten()?;
    crate::schedule::next_occurrence(&cron, after)
}

/// The scheduler: sleeps until the next time the cron expression names, then runs a
/// backup (skipped, with a warning, when one is already running).
pub fn spawn_scheduler(state: AppState, mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let schedule = state.config().backup.schedule.clone();
    next_run(&state, OffsetDateTime::now_utc())?;
    tracing::info!(schedule = %schedule, "backup scheduler on (UTC)");
    Some(tokio::spawn(async move {
        loop {
            let now = OffsetDateTime::now_utc();
            let Some(next) = next_run(&state, now) else {
                break;
            };
            let wait = Duration::try_from(next - now).unwrap_or(Duration::ZERO);
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = tokio::time::sleep(wait) => {}
            }
            if *stop.borrow() {
                break;
            }
            match acquire(&state).await {
                Ok(lock) => {
                    if let Err(e) = run(&state, lock, Trigger::Scheduled, system_actor()).await {
                        tracing::error!(error = %e, "scheduled backup failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduled backup skipped"),
            }
        }
    }))
}

/// `/readyz`: a failed last run, or no good backup for `backup.max_age_hours`, is
/// degraded (Err). No backup at all is fine until the server has been up that long.
pub async fn health(state: &AppState) -> Result<Result<String, String>, DbError> {
    let max_age_hours = state.config().backup.max_age_hours;
    let (last, last_ok) = state
        .db()
        .read(|c| Ok((store::last_run(c)?, store::last_success(c)?)))
        .await?;
    if let Some(last) = &last
        && !last.ok
    {
        return Ok(Err(format!(
            "last backup failed at {}: {}",
            last.started_at,
            last.error.as_deref().unwrap_or("unknown error")
        )));
    }
    if max_age_hours == 0 {
        return Ok(Ok(match last_ok {
            Some(r) => format!("last backup {} at {}", r.name, r.started_at),
            None => "no backup yet (age check off)".into(),
        }));
    }
    let max_age = Duration::from_secs(max_age_hours * 3600);
    match last_ok {
        Some(r) => {
            let at = time::OffsetDateTime::parse(
                &r.started_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| DbError::Other(e.to_string()))?;
            let age = Duration::try_from(OffsetDateTime::now_utc() - at).unwrap_or(Duration::ZERO);
            if age > max_age {
                Ok(Err(format!(
                    "last good backup {} is {} h old (backup.max_age_hours = {max_age_hours})",
                    r.name,
                    age.as_secs() / 3600
                )))
            } else {
                Ok(Ok(format!("last backup {} at {}", r.name, r.started_at)))
            }
        }
        None if state.uptime() > max_age => Ok(Err(format!(
            "no backup in {max_age_hours} h of uptime; run `appliance backup` or check backup.schedule"
        ))),
        None => Ok(Ok("no backup yet".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_reports_the_step_and_its_bytes() {
        let b = BackupState::default();
        assert!(b.running().is_none());
        b.progress.step(0);
        b.set_running(Some(Running {
            trigger: Trigger::Api,
            started_at: OffsetDateTime::now_utc(),
            step: STEPS[0],
            bytes_done: 0,
            bytes_total: 0,
        }));
        b.progress.report(5, 10);
        let r = b.running().unwrap();
        assert_eq!((r.step, r.bytes_done, r.bytes_total), ("writing", 5, 10));
        b.progress.step(1);
        let r = b.running().unwrap();
        assert_eq!((r.step, r.bytes_done, r.bytes_total), ("verifying", 0, 0));
        b.progress.report(7, 7);
        b.progress.step(2);
        assert_eq!(b.running().unwrap().step, "pruning");
        b.set_running(None);
        assert!(b.running().is_none());
    }
}
