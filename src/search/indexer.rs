//! The outbox indexer: a background task that applies `search_outbox` rows to the index
//! at most once per `search.commit_interval_ms`, woken early by writes (and polling, so
//! rows written by another process — `appliance articles import` — are picked up too).
//! At start its first pass replays everything above the index's committed payload; at
//! shutdown a last pass indexes what was acknowledged. The drain itself (feed the rows
//! of a pass to the writer, commit with the highest applied sequence as payload, roll
//! back a failed pass) is here too, as methods of [`Search`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tantivy::Term;
use tantivy::indexer::UserOperation;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::handle::{IndexHandle, commit_with_seq};
use super::schema::{document, searchable};
use super::{Search, SearchError};

pub fn spawn(
    search: Arc<Search>,
    errors: Arc<crate::telemetry::errors::Tracker>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_millis(search.config().commit_interval_ms);
        let mut last: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if let Some(since) = last.map(|l| l.elapsed())
                && since < interval
            {
                tokio::select! {
                    () = crate::shutdown::stopped(&mut stop) => break,
                    () = tokio::time::sleep(interval - since) => {}
                }
            }
            last = Some(Instant::now());
            match search.apply_pending().await {
                Ok(0) => {}
                // There may be more (a pass stops after one commit interval): go again,
                // spaced by the interval above.
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "indexing failed; will retry");
                    use crate::telemetry::errors::{Category, ErrorEvent, Severity};
                    errors.record(ErrorEvent::new(
                        Category::System,
                        Severity::High,
                        "indexer",
                        "index.apply_outbox",
                        e.to_string(),
                    ));
                }
            }
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = search.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
        match search.apply_pending().await {
            Ok(n) => tracing::debug!(rows = n, "final index pass"),
            Err(e) => {
                tracing::warn!(error = %e, "final index pass failed; the next start replays it")
            }
        }
    })
}

impl Search {
    /// Wait until every article change committed to the database before this call is
    /// searchable (read-your-writes), for at most `limit`. Wakes the indexer but does
    /// not commit itself, so callers cannot force a commit per request. Returns whether
    /// the index caught up in time.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn catch_up(&self, limit: std::time::Duration) -> Result<bool, SearchError> {
        let target = self.db.read(crate::db::outbox::outbox_high_water).await?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a commit in between is not missed.
            let committed = self.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            if self.handle().applied_seq() >= target {
                return Ok(true);
            }
            self.notify();
            if tokio::time::timeout_at(deadline, committed).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// Apply every pending outbox row; returns how many rows were applied.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn apply_pending(&self) -> Result<usize, SearchError> {
        let _guard = self.indexing.lock().await;
        let res = self.apply_pending_locked().await;
        self.set_last_error(res.as_ref().err().map(ToString::to_string));
        res
    }

    async fn apply_pending_locked(&self) -> Result<usize, SearchError> {
        let handle = self.handle();
        let res = self.feed_and_commit(&handle).await;
        if res.is_err() {
            // Never let documents of a failed pass be committed later under another
            // pass's payload: drop everything uncommitted; the outbox still has it.
            let h = handle.clone();
            let rolled = tokio::task::spawn_blocking(move || {
                h.writer
                    .lock()
                    .map_err(|_| SearchError::Other("index writer poisoned".into()))
                    .and_then(|mut w| w.rollback().map(|_| ()).map_err(SearchError::from))
            })
            .await;
            if let Ok(Err(e)) | Err(e) = rolled.map_err(|e| SearchError::Other(e.to_string())) {
                tracing::error!(error = %e, "cannot roll back the index writer");
            }
        }
        res
    }

    /// One pass: feed every pending outbox row to the index writer, batch by batch, and
    /// commit once at the end (or when the pass has run for a commit interval), with the
    /// highest applied outbox seq as payload. Commits are the expensive part of indexing
    /// (segment serialisation and fsyncs), so a backlog is not committed batch by batch.
    async fn feed_and_commit(&self, handle: &Arc<IndexHandle>) -> Result<usize, SearchError> {
        let interval = std::time::Duration::from_millis(self.config.commit_interval_ms);
        let limit = self.config.batch_size;
        // Text per indexing group: a quarter of one indexing thread's memory budget.
        let group_bytes = usize::try_from(self.config.writer_memory_bytes / 8)
            .unwrap_or(usize::MAX)
            .max(1 << 20);
        let started = Instant::now();
        let mut fed_through = handle.applied_seq();
        let mut total = 0;
        loop {
            let after = fed_through;
            // Outbox rows and the articles' current state from one snapshot.
            let batch = self
                .db
                .read(move |c| crate::db::outbox::outbox_batch(c, after, limit))
                .await?;
            let (Some(max_seq), n, docs) = (batch.max_seq, batch.rows, batch.articles) else {
                break;
            };
            let h = handle.clone();
            tokio::task::spawn_blocking(move || -> Result<(), SearchError> {
                let writer = h
                    .writer
                    .lock()
                    .map_err(|_| SearchError::Other("index writer poisoned".into()))?;
                // A group of operations goes to one indexing thread: a pass of a few
                // creates makes one small segment, not one per thread (each segment
                // builds a term dictionary and is merged later), while a backlog's
                // groups spread over both threads. tantivy checks its memory budget
                // between groups, so a group holds a bounded amount of text.
                let mut ops = Vec::new();
                let mut text_bytes = 0;
                for (id, article) in docs {
                    ops.push(UserOperation::Delete(Term::from_field_u64(
                        h.fields.id,
                        u64::try_from(id).unwrap_or(0),
                    )));
                    if let Some(a) = article.filter(searchable) {
                        text_bytes += a.title.len() + a.body.len();
                        ops.push(UserOperation::Add(document(&h.fields, &a)));
                    }
                    if text_bytes >= group_bytes {
                        writer.run(std::mem::take(&mut ops))?;
                        text_bytes = 0;
                    }
                }
                writer.run(ops)?;
                Ok(())
            })
            .await
            .map_err(|e| SearchError::Other(e.to_string()))??;
            fed_through = max_seq;
            total += n;
            if n < limit as usize || started.elapsed() >= interval {
                break;
            }
        }
        if total == 0 {
            return Ok(0);
        }
        let fed = Instant::now();
        // Held from the commit until the applied outbox rows are gone, so that a backup
        // never pairs an index with a database snapshot that lacks rows it still needs.
        let _commit_guard = commit_guard(&self.data_dir).await?;
        let h = handle.clone();
        tokio::task::spawn_blocking(move || -> Result<(), SearchError> {
            let mut writer = h
                .writer
                .lock()
                .map_err(|_| SearchError::Other("index writer poisoned".into()))?;
            commit_with_seq(&mut writer, fed_through)?;
            h.applied_seq.store(fed_through, Ordering::SeqCst);
            h.reader.reload()?;
            Ok(())
        })
        .await
        .map_err(|e| SearchError::Other(e.to_string()))??;
        let committed = Instant::now();
        self.committed.notify_waiters();
        self.set_last_commit();
        metrics::histogram!("appliance_search_commit_seconds")
            .record((committed - fed).as_secs_f64());
        // Only now, with the index durable, may the outbox rows go.
        self.db
            .write(move |tx| crate::db::outbox::outbox_delete_through(tx, fed_through))
            .await?;
        tracing::debug!(
            rows = total,
            feed_ms = (fed - started).as_millis() as u64,
            commit_ms = (committed - fed).as_millis() as u64,
            outbox_ms = committed.elapsed().as_millis() as u64,
            "index pass"
        );
        Ok(total)
    }
}

/// The data directory's index-commit lock, held shared (see
/// [`crate::data_dir::DataDir::index_commit_guard`]).
pub(super) async fn commit_guard(data_dir: &Path) -> Result<std::fs::File, SearchError> {
    let dd = crate::data_dir::DataDir::new(data_dir);
    tokio::task::spawn_blocking(move || dd.index_commit_guard(false))
        .await
        .map_err(|e| SearchError::Other(e.to_string()))?
        .map_err(|e| SearchError::Other(format!("cannot take the index commit lock: {e}")))
}
