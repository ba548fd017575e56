//! The one backup job, for the CLI, the API and the scheduler alike: take a snapshot,
//! record the run, verify the archive (always in the server, on `--verify` in the CLI),
//! record that, apply retention, checkpoint the WAL the snapshot held back, and audit
//! what happened. The blocking library functions run on tokio's blocking threads; the
//! bookkeeping goes wherever the caller's [`Ledger`] writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use super::retention::{self, Policy};
use super::signing::{self, Trust};
use super::snapshot::{self, CreateOptions, Created};
use super::verify::Verified;
use super::{BackupError, BackupLock, Trigger};
use crate::auth::audit::{self, Actor};
use crate::config::BackupConfig;
use crate::data_dir::DataDir;
use crate::db::audit::Outcome as Audited;
use crate::db::backups::{Run, Verification};
use crate::db::ledger::Ledger;
use crate::telemetry::errors::{Category, ErrorEvent, Severity, Tracker};

/// The step a job is in, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Writing,
    Verifying,
    Pruning,
}

impl Step {
    pub const ALL: [Step; 3] = [Step::Writing, Step::Verifying, Step::Pruning];
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Writing => "writing",
            Step::Verifying => "verifying",
            Step::Pruning => "pruning",
        }
    }
}

/// Progress of a job: its step, and the bytes of that step done and in all (each step
/// starts with `(step, 0, 0)`).
pub type Report = Arc<dyn Fn(Step, u64, u64) + Send + Sync>;

/// A report that shows nothing.
pub fn silent() -> Report {
    Arc::new(|_, _, _| {})
}

/// One backup to take.
pub struct Job<'a> {
    pub ledger: &'a Ledger,
    pub data_dir: &'a DataDir,
    pub config: &'a BackupConfig,
    pub backups_dir: &'a Path,
    pub trigger: Trigger,
    /// Verify the new archive (the server always does).
    pub verify: bool,
    pub actor: Actor,
    pub report: Report,
    /// Where failures are recorded as error events (the server's tracker).
    pub errors: Option<&'a Tracker>,
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub created: Created,
    /// The verification, when the job verified: the manifest, or what is wrong.
    pub verified: Option<Result<Verified, String>>,
    /// Archives retention removed.
    pub pruned: Vec<String>,
    /// Whether the run was recorded (a database from before V3 has no bookkeeping).
    pub recorded: bool,
}

/// Take the backup (the caller took `lock`, so that a second one is refused at once)
/// and audit the outcome as `job.actor`.
pub async fn run(job: &Job<'_>, lock: BackupLock) -> Result<Outcome, BackupError> {
    let trigger = job.trigger.as_str();
    let res = steps(job, lock).await;
    let event = match &res {
        Ok(o) => job
            .actor
            .event("backup.create", Audited::Success)
            .target(&o.created.name)
            .details(json!({
                "trigger": trigger,
                "bytes": o.created.size_bytes,
                "verified": o.verified.as_ref().map(Result::is_ok),
                "pruned": o.pruned,
            })),
        Err(e) => job
            .actor
            .event("backup.create", Audited::Failure)
            .details(json!({"trigger": trigger, "error": e.to_string()})),
    };
    audit::write(job.ledger, event).await;
    res
}

#[tracing::instrument(skip_all, fields(trigger = job.trigger.as_str()))]
async fn steps(job: &Job<'_>, lock: BackupLock) -> Result<Outcome, BackupError> {
    let started_at = OffsetDateTime::now_utc();
    let previous_ratio = job
        .ledger
        .last_backup_success()
        .await?
        .and_then(|r| ratio(&r));
    (job.report)(Step::Writing, 0, 0);
    let (data_dir, report, trigger) = (job.data_dir.clone(), job.report.clone(), job.trigger);
    let (compression_level, min_free_margin_bytes) = (
        job.config.compression_level,
        job.config.min_free_margin_bytes,
    );
    let key_at = signing::Location::of(job.config, data_dir.root());
    let (lock, created) = tokio::task::spawn_blocking(move || {
        let progress = |done: u64, total: u64| report(Step::Writing, done, total);
        let key = match key_at.load_or_create() {
            Ok(k) => k,
            Err(e) => return (lock, Err(e)),
        };
        let opts = CreateOptions {
            key: &key,
            trigger,
            compression_level,
            min_free_margin_bytes,
            previous_ratio,
            progress: Some(&progress),
        };
        let res = snapshot::create(&lock, &data_dir, &opts);
        (lock, res)
    })
    .await
    .map_err(|e| BackupError::Other(e.to_string()))?;
    let recorded = job
        .ledger
        .record_backup_run(run_record(&created, trigger, started_at))
        .await?;
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            if let Some(t) = job.errors {
                tracing::error!(error = %e, trigger = trigger.as_str(), "backup failed");
                t.record(ErrorEvent::new(
                    Category::System,
                    Severity::High,
                    "backup",
                    format!("backup.create ({})", trigger.as_str()),
                    e.to_string(),
                ));
            }
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
    let verified = if job.verify {
        (job.report)(Step::Verifying, 0, 0);
        let key = signing::Location::of(job.config, job.data_dir.root()).load()?;
        let v = verify_and_record(
            job.ledger,
            job.backups_dir,
            &created.path,
            &Scratch::of(job.data_dir.root(), job.config),
            Trust::strict(key),
            job.report.clone(),
            job.errors,
        )
        .await?;
        Some(v.map_err(|e| e.brief()))
    } else {
        None
    };
    (job.report)(Step::Pruning, 0, 0);
    let pruned = prune(job.ledger, job.backups_dir, job.config, false)
        .await?
        .delete;
    job.ledger.checkpoint_after_backup().await;
    drop(lock);
    Ok(Outcome {
        created,
        verified,
        pruned,
        recorded,
    })
}

/// What to record of an attempt that started at `started_at`.
fn run_record(
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
fn ratio(r: &Run) -> Option<f64> {
    match (r.size_bytes, r.source_bytes) {
        (Some(a), Some(s)) if s > 0 => Some(a as f64 / s as f64),
        _ => None,
    }
}

/// Where a verification extracts the database and index for its deep checks: the data
/// directory (its disk holds that much already; never the backups disk, which may be
/// nearly full of archives), or the system's temporary directory when there is none.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub dir: PathBuf,
    /// Free space kept on top of what the checks need (`backup.min_free_margin_bytes`).
    pub margin: u64,
}

impl Scratch {
    pub fn of(data_dir: &Path, config: &BackupConfig) -> Scratch {
        let dir = if data_dir.is_dir() {
            data_dir.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Scratch {
            dir,
            margin: config.min_free_margin_bytes,
        }
    }
}

/// Verify the archive at `path` completely and record the result when the archive is one
/// of `backups_dir`'s: passed, failed, or not checked (too little scratch space, which
/// says nothing against the archive). The outer error is bookkeeping that failed; the
/// inner result is the archive's.
pub async fn verify_and_record(
    ledger: &Ledger,
    backups_dir: &Path,
    path: &Path,
    scratch: &Scratch,
    trust: Trust,
    report: Report,
    errors: Option<&Tracker>,
) -> Result<Result<Verified, BackupError>, BackupError> {
    let archive = path.to_path_buf();
    let scratch = scratch.clone();
    let res = tokio::task::spawn_blocking(move || {
        let progress = |done: u64, total: u64| report(Step::Verifying, done, total);
        super::verify::verify(
            &archive,
            &scratch.dir,
            scratch.margin,
            &trust,
            Some(&progress),
        )
    })
    .await
    .map_err(|e| BackupError::Other(e.to_string()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let (Err(e), Some(t)) = (&res, errors) {
        tracing::error!(archive = %name, error = %e, "backup verification failed");
        t.record(ErrorEvent::new(
            Category::System,
            Severity::High,
            "backup",
            "backup.verify",
            format!("{name}: {e}"),
        ));
    }
    if path.parent() == Some(backups_dir) {
        let v = match &res {
            Ok(_) => Verification::passed(crate::clock::now()),
            Err(e @ BackupError::NoScratchSpace { .. }) => {
                Verification::not_checked(crate::clock::now(), &e.brief())
            }
            Err(e) => Verification::failed(crate::clock::now(), &e.brief()),
        };
        ledger.record_verification(name, v).await?;
    }
    Ok(res)
}

/// Apply retention to `backups_dir`: archives not known to be verified do not count
/// as good ones (see `retention`).
pub async fn prune(
    ledger: &Ledger,
    backups_dir: &Path,
    config: &BackupConfig,
    dry_run: bool,
) -> Result<retention::Plan, BackupError> {
    let verified = verified_names(ledger).await?;
    let dir: PathBuf = backups_dir.to_path_buf();
    let policy = Policy::from(config);
    tokio::task::spawn_blocking(move || retention::prune(&dir, policy, &verified, dry_run))
        .await
        .map_err(|e| BackupError::Other(e.to_string()))?
}

/// Names of archives whose last verification succeeded.
pub async fn verified_names(ledger: &Ledger) -> Result<HashSet<String>, BackupError> {
    Ok(ledger
        .verifications()
        .await?
        .into_iter()
        .filter(|(_, v)| v.ok)
        .map(|(n, _)| n)
        .collect())
}
