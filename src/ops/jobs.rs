//! Background jobs: long operations (an index rebuild, a backup, an archive's
//! verification, and the remote and AI work to come) run in a task of their own that
//! outlives the request which started it. The request gets `202 Accepted` and the job at
//! once; its progress (while it runs) and its outcome are read from
//! `GET /api/admin/jobs/{id}`. One job of a kind runs at a time (a second is refused).
//! Every job is recorded in the `jobs` table when it starts and when it ends, and
//! audited when it ends; a job a stopped server left `running` is marked `interrupted`
//! at the next start (its leftovers are removed then too, see `backup::leftovers`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::audit::{self, Actor};
use crate::db::DbError;
use crate::db::audit::Outcome;
use crate::db::jobs::{self, JobRow};
use crate::state::AppState;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    IndexRebuild,
    Backup,
    BackupVerify,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::IndexRebuild, Kind::Backup, Kind::BackupVerify];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IndexRebuild => "index_rebuild",
            Kind::Backup => "backup",
            Kind::BackupVerify => "backup_verify",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Progress of a running job, set by its work: a step name, and units done of a total
/// (documents, bytes; 0 of 0 until known).
#[derive(Debug, Default)]
pub struct Progress {
    step: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    pub fn set(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
    pub fn step(&self, step: &str) {
        *self
            .step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = step.to_string();
        self.set(0, 0);
    }
    fn view(&self) -> Value {
        let step = self
            .step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        json!({
            "step": (!step.is_empty()).then_some(step),
            "done": self.done.load(Ordering::Relaxed),
            "total": self.total.load(Ordering::Relaxed),
        })
    }
}

/// The jobs running in this server, by kind.
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<HashMap<Kind, (i64, Arc<Progress>)>>,
}

impl Jobs {
    fn claim(&self, kind: Kind, progress: Arc<Progress>) -> Result<(), JobError> {
        let mut r = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((id, _)) = r.get(&kind) {
            return Err(JobError::AlreadyRunning { kind, id: *id });
        }
        r.insert(kind, (0, progress));
        Ok(())
    }
    fn set_id(&self, kind: Kind, id: i64) {
        if let Some(entry) = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&kind)
        {
            entry.0 = id;
        }
    }
    fn release(&self, kind: Kind) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&kind);
    }
    fn progress_of(&self, id: i64) -> Option<Arc<Progress>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("a {} job is already running (job {id}); try again when it has finished", kind.as_str())]
    AlreadyRunning { kind: Kind, id: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A job to start: its kind, who asked, what it acts on, and the audit action its end
/// is recorded under (None when the work audits itself).
pub struct Spec {
    pub kind: Kind,
    pub actor: Actor,
    pub target: Option<String>,
    pub audit_action: Option<&'static str>,
}

/// Start `work` as a background job and return its record at once. The work reports
/// progress through the [`Progress`] it is given and ends with a JSON result or an error
/// in words; a panic is recorded as a failure.
pub async fn start<F, Fut>(state: &AppState, spec: Spec, work: F) -> Result<JobRow, JobError>
where
    F: FnOnce(Arc<Progress>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, String>> + Send + 'static,
{
    let progress = Arc::new(Progress::default());
    let kind = spec.kind;
    state.jobs().claim(kind, progress.clone())?;
    let at = crate::clock::now();
    let (actor_name, target, started) = (spec.actor.name.clone(), spec.target.clone(), at.clone());
    let id = match state
        .db()
        .write(move |c| jobs::start(c, kind.as_str(), &actor_name, target.as_deref(), &started))
        .await
    {
        Ok(id) => id,
        Err(e) => {
            state.jobs().release(kind);
            return Err(e.into());
        }
    };
    state.jobs().set_id(kind, id);
    tracing::info!(job = id, kind = kind.as_str(), "job started");
    let row = JobRow {
        id,
        kind: kind.as_str().into(),
        state: "running".into(),
        actor: spec.actor.name.clone(),
        target: spec.target.clone(),
        started_at: at,
        finished_at: None,
        result: None,
        error: None,
    };
    let st = state.clone();
    tokio::spawn(async move {
        let outcome = match tokio::spawn(work(progress)).await {
            Ok(o) => o,
            Err(e) => Err(format!("the job failed unexpectedly: {e}")),
        };
        finish(&st, id, &spec, &outcome).await;
        st.jobs().release(kind);
    });
    Ok(row)
}

async fn finish(state: &AppState, id: i64, spec: &Spec, outcome: &Result<Value, String>) {
    let (at, o) = (crate::clock::now(), outcome.clone());
    if let Err(e) = state
        .db()
        .write(move |c| jobs::finish(c, id, &at, &o))
        .await
    {
        tracing::error!(job = id, error = %e, "cannot record how a job ended");
    }
    match outcome {
        Ok(_) => tracing::info!(job = id, kind = spec.kind.as_str(), "job succeeded"),
        Err(e) => tracing::warn!(job = id, kind = spec.kind.as_str(), error = %e, "job failed"),
    }
    if let Some(action) = spec.audit_action {
        let mut e = spec.actor.event(
            action,
            if outcome.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        );
        e.target = spec.target.clone();
        e.details = match outcome {
            Ok(v) => json!({"job": id, "result": v}),
            Err(err) => json!({"job": id, "error": err}),
        };
        audit::write(&state.ledger(), e).await;
    }
}

/// A job as the API shows it: the record, and while it runs its progress.
pub fn view(state: &AppState, row: &JobRow) -> Value {
    let mut v = json!(row);
    if row.state == "running"
        && let Some(p) = state.jobs().progress_of(row.id)
    {
        v["progress"] = p.view();
    }
    v
}

/// Mark jobs a previous server left running as interrupted (at start).
pub async fn interrupt_stale(db: &crate::db::Db) -> Result<(), DbError> {
    let at = crate::clock::now();
    let n = db.write(move |c| jobs::interrupt_running(c, &at)).await?;
    if n > 0 {
        tracing::warn!(
            jobs = n,
            "jobs the previous server did not finish are marked interrupted"
        );
    }
    Ok(())
}
