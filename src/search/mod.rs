//! Full-text search over articles with tantivy, kept in step with SQLite through the
//! `search_outbox` (DESIGN.md, search index rules): the index under `data/index/` is
//! opened once and shared, the indexer ([`indexer`]) applies outbox rows in batches and
//! commits with the highest applied sequence as payload, and a damaged or missing index,
//! or one built with another analyzer or schema, is rebuilt from the database and
//! swapped in atomically.
//! Nothing here writes articles; SQLite stays the single source of truth.

mod directory;
mod execute;
mod handle;
pub mod indexer;
pub mod query;
mod rebuild;
mod schema;
mod snippet;
pub mod stem;

pub use execute::escape_html;
use handle::{IndexHandle, commit_with_seq, indexed_ids, missing_segment_files};
use indexer::commit_guard;
use rebuild::{build_fresh, verify_handle};
pub use rebuild::{compare_ids, ids_offline, rebuild_offline, verify_ids};
use schema::{build_schema, document, searchable};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::config::SearchConfig;
use crate::db::{Db, DbError};

/// Title matches count this many times a body match, so they rank first.
const TITLE_BOOST: f32 = 3.0;
/// Length of a snippet, in characters.
const SNIPPET_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("invalid query: {0}")]
    Syntax(query::SyntaxError),
    #[error("{0}")]
    Other(String),
}

impl From<std::io::Error> for SearchError {
    fn from(e: std::io::Error) -> Self {
        SearchError::Other(e.to_string())
    }
}

/// Progress of a rebuild: (articles done, articles in all).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Search over the shared index, plus the operations that replace it.
pub struct Search {
    handle: RwLock<Arc<IndexHandle>>,
    data_dir: PathBuf,
    config: SearchConfig,
    db: Db,
    notify: tokio::sync::Notify,
    /// Searches run here, one per core at a time: more would only time-slice the cores
    /// (each query slower, the tail longer); the rest wait their turn in order, and a
    /// thread that finishes one takes the next without a hand-off.
    pool: rayon::ThreadPool,
    /// Woken after every index commit and swap, for [`Search::catch_up`] (which reads
    /// the live handle's applied seq).
    committed: tokio::sync::Notify,
    /// Held by an indexer batch or a rebuild: they never overlap.
    indexing: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
    /// When this process last committed to the index (a pass or a rebuild).
    last_commit: Mutex<Option<time::OffsetDateTime>>,
}

/// Report of `index verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Published, not deleted: what the index should hold.
    pub database_articles: u64,
    pub index_documents: u64,
    pub outbox_pending: u64,
    /// Published in the database, absent from the index (and not waiting in the outbox).
    pub missing_from_index: Vec<i64>,
    /// In the index, but unpublished, deleted or absent in the database (and not waiting).
    pub not_in_database: Vec<i64>,
}

impl Verification {
    pub fn is_consistent(&self) -> bool {
        self.missing_from_index.is_empty() && self.not_in_database.is_empty()
    }
}

/// A search request after validation.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: String,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub strict: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub category: Option<String>,
    pub score: f32,
    /// HTML: the text is escaped, matched terms are wrapped in `<mark>`.
    pub snippet: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub total: usize,
    pub took_ms: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Search {
    /// Open the index under `data_dir/index`, rebuilding it from the database when it
    /// is missing, damaged, or built with another analyzer or schema.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn open(
        data_dir: &Path,
        config: &SearchConfig,
        db: Db,
    ) -> Result<Search, SearchError> {
        let dir = data_dir.join("index");
        let cfg = config.clone();
        let opened = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || {
                if !dir.join("meta.json").exists() {
                    return Err(SearchError::Other("no index yet".into()));
                }
                IndexHandle::open(&dir, &cfg)
            }
        })
        .await
        .map_err(|e| SearchError::Other(e.to_string()))?;
        let handle = match opened {
            Ok(h) => h,
            Err(why) => {
                if dir.join("meta.json").exists() {
                    tracing::warn!(reason = %why, "search index unusable; rebuilding it from the database");
                } else {
                    tracing::info!("creating the search index from the database");
                }
                // Nothing else runs yet: the outbox is left as it is and replayed.
                build_fresh(data_dir, config, &db, None).await?.0
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("search-{i}"))
            // A panicking search fails that request (its reply channel is dropped, so
            // the caller gets an error); without a handler rayon would abort.
            .panic_handler(|_| tracing::error!("a search panicked"))
            .build()
            .map_err(|e| SearchError::Other(format!("cannot start the search threads: {e}")))?;
        Ok(Search {
            pool,
            committed: tokio::sync::Notify::new(),
            handle: RwLock::new(Arc::new(handle)),
            data_dir: data_dir.to_path_buf(),
            config: config.clone(),
            db,
            notify: tokio::sync::Notify::new(),
            indexing: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            last_commit: Mutex::new(None),
        })
    }

    pub fn handle(&self) -> Arc<IndexHandle> {
        self.handle
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// Wake the indexer: something was written to the outbox.
    pub fn notify(&self) {
        self.notify.notify_one();
    }

    pub(crate) async fn notified(&self) {
        self.notify.notified().await
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    }

    /// When this process last committed to the index (none since start).
    pub fn last_commit(&self) -> Option<time::OffsetDateTime> {
        *self
            .last_commit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_last_commit(&self) {
        *self
            .last_commit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(time::OffsetDateTime::now_utc());
    }

    /// Rebuild the index from the database beside the live one and swap it in. Runs
    /// between indexer batches; searches keep using the old index until the swap.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn rebuild(&self, progress: Option<Progress>) -> Result<u64, SearchError> {
        let _guard = self.indexing.lock().await;
        let (handle, _commit_guard) =
            build_fresh(&self.data_dir, &self.config, &self.db, progress).await?;
        let docs = handle.num_docs();
        let seq = handle.applied_seq();
        *self
            .handle
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(handle);
        self.committed.notify_waiters();
        self.db
            .write(move |tx| crate::db::outbox::outbox_delete_through(tx, seq))
            .await?;
        self.set_last_error(None);
        self.set_last_commit();
        drop(_guard);
        // Changes that came in during the rebuild.
        self.notify();
        Ok(docs)
    }

    /// Compare the index with the database (ids both ways), allowing for changes that
    /// are still waiting in the outbox.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(&self) -> Result<Verification, SearchError> {
        let _guard = self.indexing.lock().await;
        verify_handle(&self.handle(), &self.db).await
    }

    /// Problems that make search unusable or stale, for `/readyz`.
    pub fn health(&self) -> Result<String, String> {
        let h = self.handle();
        missing_segment_files(&h.index, &h.dir).map_err(|e| {
            format!("{e}; run `appliance index rebuild` (or POST /api/admin/index/rebuild)")
        })?;
        if let Some(e) = self.last_error() {
            return Err(format!("indexing failed: {e}"));
        }
        Ok(format!(
            "{} documents, applied through outbox seq {}",
            h.num_docs(),
            h.applied_seq()
        ))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn search(&self, req: SearchRequest) -> Result<SearchResults, SearchError> {
        let handle = self.handle();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            // A caller that went away while this waited its turn (the client hung up)
            // costs no search; one that goes during it gets nothing delivered.
            if !tx.is_closed() {
                let _ = tx.send(execute::run_search(&handle, &req));
            }
        });
        rx.await
            .map_err(|_| SearchError::Other("the search failed unexpectedly".into()))?
    }
}
