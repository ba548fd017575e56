//! Backups inside `serve`: the one job (`backup::job`) run by the scheduler (a cron
//! expression in UTC) and by `POST /api/admin/backups`, the in-process state of the
//! backup being written (its step and bytes, for the API and the UI), verification on
//! request, and what `/readyz` says about backups.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::audit::Actor;
use crate::backup::job::{self, Job, Outcome, Step};
use crate::backup::signing::{Location, Trust};
use crate::backup::{BackupError, BackupLock, Trigger};
use crate::db::DbError;
use crate::db::backups as store;
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

impl RunProgress {
    fn step(&self, i: u8) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.step.store(i, Ordering::Relaxed);
    }
    fn set(&self, step: Step, done: u64, total: u64) {
        let i = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
        self.step
            .store(u8::try_from(i).unwrap_or(0), Ordering::Relaxed);
        self.report(done, total);
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
        r.step = Step::ALL
            .get(usize::from(p.step.load(Ordering::Relaxed)))
            .map_or("writing", |s| s.as_str());
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
#[tracing::instrument(level = "debug", skip_all)]
pub async fn acquire(state: &AppState) -> Result<BackupLock, BackupError> {
    let dir = state.config().backups_dir();
    tokio::task::spawn_blocking(move || BackupLock::acquire(&dir))
        .await
        .map_err(|e| BackupError::Other(e.to_string()))?
}

/// Run the backup job, showing its progress in [`BackupState::running`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run(
    state: &AppState,
    lock: BackupLock,
    trigger: Trigger,
    actor: Actor,
) -> Result<Outcome, BackupError> {
    let backups = state.backups();
    backups.progress.step(0);
    backups.set_running(Some(Running {
        trigger,
        started_at: OffsetDateTime::now_utc(),
        step: Step::Writing.as_str(),
        bytes_done: 0,
        bytes_total: 0,
    }));
    let progress = backups.progress.clone();
    let (ledger, backups_dir) = (state.ledger(), state.config().backups_dir());
    let res = job::run(
        &Job {
            ledger: &ledger,
            data_dir: state.data_dir(),
            config: &state.config().backup,
            backups_dir: &backups_dir,
            trigger,
            verify: true,
            actor,
            report: Arc::new(move |step, done, total| progress.set(step, done, total)),
            errors: Some(state.errors()),
        },
        lock,
    )
    .await;
    backups.set_running(None);
    // A verified archive goes off the machine, in the background.
    if let Ok(outcome) = &res
        && matches!(outcome.verified, Some(Ok(_)))
        && state.config().backup.remote.enabled()
    {
        crate::replication::job::spawn_push(state.clone(), outcome.created.path.clone());
    }
    res
}

/// Verify an archive of the backups directory by name and record the result: the
/// outer error is a bad name or failed bookkeeping, the inner one what is wrong.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(
    state: &AppState,
    name: &str,
) -> Result<Result<crate::backup::verify::Verified, String>, BackupError> {
    let dir = state.config().backups_dir();
    let path = crate::backup::resolve(&dir, name)?;
    // Progress shows in `running` while a run verifies its archive (ignored otherwise).
    let progress = state.backups().progress.clone();
    let config = state.config();
    let key = Location::of(&config.backup, &config.data_dir).load()?;
    let res = job::verify_and_record(
        &state.ledger(),
        &dir,
        &path,
        &job::Scratch::of(&config.data_dir, &config.backup),
        Trust::strict(key),
        Arc::new(move |_, done, total| progress.report(done, total)),
        Some(state.errors()),
    )
    .await?;
    Ok(res.map_err(|e| e.brief()))
}

/// The next time the schedule fires after `after`, if there is a schedule.
pub fn next_run(state: &AppState, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let cron = state.config().backup.cron().ok().flatten()?;
    crate::schedule::next_occurrence(&cron, after)
}

/// The scheduler: runs a backup each time the cron expression fires (skipped, with a
/// warning, when one is already running).
pub fn spawn_scheduler(state: AppState, stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let cron = state.config().backup.cron().ok().flatten()?;
    tracing::info!(schedule = %state.config().backup.schedule, "backup scheduler on (UTC)");
    Some(crate::schedule::spawn(cron, stop, move || {
        let state = state.clone();
        async move {
            match acquire(&state).await {
                Ok(lock) => {
                    if let Err(e) = run(&state, lock, Trigger::Scheduled, Actor::system()).await {
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
#[tracing::instrument(level = "debug", skip_all)]
pub async fn health(state: &AppState) -> Result<Result<String, String>, DbError> {
    let local = local_health(state).await?;
    if !state.config().backup.remote.enabled() {
        return Ok(local);
    }
    let Ok(detail) = local else {
        return Ok(local);
    };
    Ok(crate::replication::job::health(state)
        .await?
        .map(|offsite| format!("{detail}; {offsite}")))
}

async fn local_health(state: &AppState) -> Result<Result<String, String>, DbError> {
    let max_age_hours = state.config().backup.max_age_hours;
    let (last, last_ok, verifications) = state
        .db()
        .read(|c| {
            Ok((
                store::last_run(c)?,
                store::last_success(c)?,
                store::verifications(c)?,
            ))
        })
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
    // The newest archive must have passed verification (a backup being verified right
    // now is given the time to finish).
    let unverified = last_ok.as_ref().and_then(|newest| {
        let name = &newest.name;
        match verifications.get(name) {
            Some(v) if v.ok => None,
            Some(v) if v.found_faulty() => Some(format!(
                "the newest backup {name} failed verification: {}; take a new backup",
                v.error.as_deref().unwrap_or("unknown error")
            )),
            Some(v) => Some(format!(
                "the newest backup {name} could not be verified ({}); free space and run `appliance backup verify {name}`",
                v.error.as_deref().unwrap_or("")
            )),
            None if state.backups().running().is_some() => None,
            None => Some(format!(
                "the newest backup {name} has not been verified; run `appliance backup verify {name}`"
            )),
        }
    });
    if max_age_hours == 0 {
        return Ok(match (last_ok, unverified) {
            (_, Some(problem)) => Err(problem),
            (Some(r), None) => Ok(format!("last backup {} at {}", r.name, r.started_at)),
            (None, None) => Ok("no backup yet (age check off)".into()),
        });
    }
    let max_age = Duration::from_secs(max_age_hours * 3600);
    match last_ok {
        Some(r) => {
            let at = crate::clock::parse(&r.started_at)
                .ok_or_else(|| DbError::Other(format!("bad time `{}`", r.started_at)))?;
            let age = Duration::try_from(OffsetDateTime::now_utc() - at).unwrap_or(Duration::ZERO);
            if age > max_age {
                Ok(Err(format!(
                    "last good backup {} is {} h old (backup.max_age_hours = {max_age_hours})",
                    r.name,
                    age.as_secs() / 3600
                )))
            } else if let Some(problem) = unverified {
                Ok(Err(problem))
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
            step: "writing",
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
