//! The single writer: a dedicated thread owns the write connection and runs jobs from a
//! queue. Transactional jobs that are waiting together are committed as a group — one
//! `BEGIN IMMEDIATE … COMMIT` — so concurrent requests share one commit instead of
//! queueing for one each. A job's caller is answered only after the COMMIT that
//! contains it returned, so an acknowledged write is exactly as durable as with one
//! transaction per request.
//!
//! A job that fails does not disturb the others, and nothing of it is written. Failures
//! are rare, so a group first runs its jobs one after another with nothing in between.
//! When a job fails, the whole transaction is rolled back: the failed job's outcome is
//! its error, and the other jobs run again in a fresh transaction, this time each under
//! its own `SAVEPOINT`, so that a second failure costs nobody a third run. Only the
//! outcome of the run that was committed reaches a caller. A savepoint per job in every
//! group made SQLite copy each page a job touched into its sub-journal first; without
//! them single creates ran 13,528 → 16,008/s (README, Performance).
//!
//! Every job carries a [`Claim`]: the writer thread claims it before running it, a
//! caller that gave up waiting cancels it. Exactly one of them wins, so a write that was
//! answered "busy" can never run later.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::DbError;
use super::auth_epoch::{self, AuthEpoch};

/// Most jobs committed together; bounds the time one COMMIT holds its callers.
const MAX_GROUP: usize = 512;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// Decides, once, whether a queued job runs or was abandoned by its caller.
#[derive(Clone, Default)]
pub(crate) struct Claim(Arc<AtomicU8>);

impl Claim {
    /// The writer thread takes the job; false if the caller already gave up.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(PENDING, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
    /// The caller gives up; false if the job already runs (then wait for its result).
    pub(crate) fn cancel(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

pub(crate) enum Job {
    /// Runs inside a group transaction, under its own savepoint.
    Tx(Box<dyn TxJob>),
    /// Runs alone, outside any transaction (migrations, VACUUM INTO, checkpoints).
    Exclusive(Claim, Box<dyn FnOnce(&mut Connection) + Send>),
}

pub(crate) trait TxJob: Send {
    fn claim(&self) -> &Claim;
    /// Run the work; true when it succeeded (and may be committed). It runs again when
    /// its group is rolled back for another job's failure; the last run's outcome is the
    /// one delivered.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Deliver the outcome once the group's COMMIT (or its failure) is known.
    fn finish(self: Box<Self>, commit: Result<(), &DbError>);
}

pub(crate) struct TxJobOf<T, E, F> {
    pub(crate) claim: Claim,
    pub(crate) work: F,
    pub(crate) out: Option<Result<T, E>>,
    pub(crate) reply: Option<oneshot::Sender<Result<T, E>>>,
    /// When it was queued, until its first run records the wait.
    pub(crate) queued: Option<std::time::Instant>,
}

impl<T, E, F> TxJob for TxJobOf<T, E, F>
where
    T: Send,
    E: From<DbError> + Send,
    F: Fn(&Connection) -> Result<T, E> + Send,
{
    fn claim(&self) -> &Claim {
        &self.claim
    }

    fn run(&mut self, conn: &Connection) -> bool {
        if let Some(queued) = self.queued.take() {
            metrics::histogram!("appliance_db_write_wait_seconds")
                .record(queued.elapsed().as_secs_f64());
        }
        let work = &self.work;
        let out = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(E::from(DbError::Other(
                "the write panicked; it was rolled back".into(),
            )))
        });
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(mut self: Box<Self>, commit: Result<(), &DbError>) {
        let out = match (self.out.take(), commit) {
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) => Err(E::from(e.replicate())),
            (Some(Err(e)), _) => Err(e),
            (None, Err(e)) => Err(E::from(e.replicate())),
            (None, Ok(())) => Err(E::from(DbError::Other("the write did not run".into()))),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone (client disconnected): the outcome stands anyway.
            let _ = reply.send(out);
        }
    }
}

/// The writer thread's loop: until every sender is gone. After every commit (and every
/// job run alone) a change of users or API tokens is announced to other processes and
/// to this one's token cache, before the callers hear of the commit.
pub(crate) fn run(mut conn: Connection, jobs: Receiver<Job>, auth: &AuthEpoch) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        match job {
            Job::Exclusive(claim, work) => {
                if claim.start() {
                    // A panic here would take the writer with it: contain it.
                    if catch_unwind(AssertUnwindSafe(|| work(&mut conn))).is_err() {
                        tracing::error!("an exclusive database job panicked");
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    auth.observe(auth_epoch::read(&conn).ok());
                }
            }
            Job::Tx(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match jobs.try_recv() {
                        Ok(Job::Tx(j)) => group.push(j),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                group.retain(|j| j.claim().start());
                run_group(&conn, group, auth, Isolation::Optimistic);
            }
        }
    }
}

/// How the jobs of a group are kept apart inside its transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isolation {
    /// Nothing between them: a failure rolls the group back.
    Optimistic,
    /// A savepoint per job: a failure rolls back that job alone.
    Savepoints,
}

fn run_group(conn: &Connection, group: Vec<Box<dyn TxJob>>, auth: &AuthEpoch, iso: Isolation) {
    if group.is_empty() {
        return;
    }
    let began = std::time::Instant::now();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = DbError::from(e);
        for j in group {
            j.finish(Err(&e));
        }
        return;
    }
    let mut done: Vec<Box<dyn TxJob>> = Vec::with_capacity(group.len());
    let mut rest = group.into_iter();
    while let Some(mut job) = rest.next() {
        let ok = match iso {
            Isolation::Optimistic => job.run(conn),
            // Cached statements: these run twice for every write.
            Isolation::Savepoints => match conn
                .prepare_cached("SAVEPOINT job")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => job.run(conn),
                Err(_) => false,
            },
        };
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O error…): the jobs
            // before this one are lost with it; this one reports its own error; the rest
            // start over in a fresh transaction.
            let e = DbError::Other("the transaction was rolled back by SQLite".into());
            for d in done {
                d.finish(Err(&e));
            }
            job.finish(Err(&e));
            return run_group(conn, rest.collect(), auth, iso);
        }
        if iso == Isolation::Optimistic && !ok {
            // Its changes, if any, are mixed with the others': roll everything back. Its
            // own error is its outcome; the others run again, each under a savepoint.
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "cannot roll back a failed write's group");
            }
            job.finish(Ok(()));
            let again: Vec<Box<dyn TxJob>> = done.into_iter().chain(rest).collect();
            return run_group(conn, again, auth, Isolation::Savepoints);
        }
        if iso == Isolation::Savepoints {
            let ended = if ok {
                conn.prepare_cached("RELEASE job")
                    .and_then(|mut s| s.execute([]))
                    .map(drop)
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            };
            if let Err(e) = ended {
                tracing::error!(error = %e, "cannot end a savepoint");
            }
        }
        done.push(job);
    }
    let committed = conn.execute_batch("COMMIT");
    metrics::histogram!("appliance_db_write_transaction_seconds")
        .record(began.elapsed().as_secs_f64());
    match committed {
        Ok(()) => {
            auth.observe(auth_epoch::read(conn).ok());
            for j in done {
                j.finish(Ok(()));
            }
        }
        Err(e) => {
            let e = DbError::from(e);
            let _ = conn.execute_batch("ROLLBACK");
            for j in done {
                j.finish(Err(&e));
            }
        }
    }
}
