//! Full-text search over articles with tantivy, kept in step with SQLite through the
//! `search_outbox` (DESIGN.md, search index rules): the index under `data/index/` is
//! opened once and shared, the indexer ([`indexer`]) applies outbox rows in batches and
//! commits with the highest applied sequence as payload, and a damaged or missing index,
//! or one built with another analyzer or schema, is rebuilt from the database and
//! swapped in atomically.
//! Nothing here writes articles; SQLite stays the single source of truth.

mod directory;
mod execute;
pub mod indexer;
pub mod query;
mod rebuild;
mod snippet;
pub mod stem;

pub use execute::escape_html;
use rebuild::{build_fresh, verify_handle};
pub use rebuild::{compare_ids, ids_offline, rebuild_offline, verify_ids};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;
use tantivy::indexer::UserOperation;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::articles::{Article, Status};
use crate::config::{Analyzer, SearchConfig};
use crate::db::{Db, DbError, articles as store};

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

/// The fields of the index schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub slug: Field,
    /// Indexed (for `title:` and the title boost) and stored.
    pub title: Field,
    /// Stored only, for snippets: its words are indexed in `text`.
    pub body: Field,
    /// Title and body, indexed as two values (a phrase does not run from one into the
    /// other): what a word has to match. One field instead of `title OR body` per word
    /// makes a query an intersection of plain posting lists.
    pub text: Field,
    pub category: Field,
    pub tags: Field,
    pub status: Field,
    pub updated_at: Field,
}

fn tokenizer_name(a: Analyzer) -> &'static str {
    match a {
        Analyzer::English => stem::EN_STEM,
        Analyzer::Simple => "default",
    }
}

fn build_schema(analyzer: Analyzer) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer_name(analyzer))
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        slug: b.add_text_field("slug", STRING | STORED),
        title: b.add_text_field("title", indexed.clone().set_stored()),
        body: b.add_text_field("body", STORED),
        text: b.add_text_field("text", indexed),
        category: b.add_text_field("category", STRING | STORED),
        tags: b.add_text_field("tags", STRING | STORED),
        status: b.add_text_field("status", STRING | STORED),
        updated_at: b.add_date_field("updated_at", INDEXED | STORED),
    };
    (b.build(), fields)
}

fn fields_of(schema: &Schema) -> Result<Fields, SearchError> {
    let f = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| SearchError::Other(format!("index has no field `{name}`")))
    };
    Ok(Fields {
        id: f("id")?,
        slug: f("slug")?,
        title: f("title")?,
        body: f("body")?,
        text: f("text")?,
        category: f("category")?,
        tags: f("tags")?,
        status: f("status")?,
        updated_at: f("updated_at")?,
    })
}

/// The payload stored with each index commit: everything up to this outbox seq is in.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Payload {
    outbox_seq: i64,
}

fn read_payload(index: &Index) -> Result<i64, SearchError> {
    let metas = index.load_metas()?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<Payload>(p).ok())
        .map(|p| p.outbox_seq)
        .unwrap_or(0))
}

fn commit_with_seq(writer: &mut IndexWriter, seq: i64) -> Result<(), SearchError> {
    let payload = serde_json::to_string(&Payload { outbox_seq: seq })
        .map_err(|e| SearchError::Other(e.to_string()))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

/// One opened index: reader for searches, the single writer for the indexer.
pub struct IndexHandle {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<IndexWriter>,
    applied_seq: AtomicI64,
    dir: PathBuf,
}

impl IndexHandle {
    /// Open an existing index and prove it usable: the schema is this version's with
    /// the configured analyzer, every segment file is present, a searcher opens.
    fn open(dir: &Path, config: &SearchConfig) -> Result<IndexHandle, SearchError> {
        let index = Index::open(directory::IndexDirectory::open(dir)?)?;
        stem::register(&index);
        let schema = index.schema();
        if schema != build_schema(config.analyzer).0 {
            let tokenizer = schema.get_field("title").ok().and_then(|f| {
                match schema.get_field_entry(f).field_type() {
                    tantivy::schema::FieldType::Str(opts) => opts
                        .get_indexing_options()
                        .map(|i| i.tokenizer().to_string()),
                    _ => None,
                }
            });
            return Err(SearchError::Other(format!(
                "index schema differs from this version's (built with analyzer {tokenizer:?}, \
                 config says {:?})",
                config.analyzer
            )));
        }
        let fields = fields_of(&schema)?;
        missing_segment_files(&index, dir)?;
        Self::from_index(index, fields, dir, config)
    }

    fn from_index(
        index: Index,
        fields: Fields,
        dir: &Path,
        config: &SearchConfig,
    ) -> Result<IndexHandle, SearchError> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let memory = usize::try_from(config.writer_memory_bytes).unwrap_or(usize::MAX);
        // Two indexing threads: this is a 2-core appliance.
        let writer = index.writer_with_num_threads(2, memory)?;
        let applied = read_payload(&index)?;
        Ok(IndexHandle {
            index,
            reader,
            fields,
            writer: Mutex::new(writer),
            applied_seq: AtomicI64::new(applied),
            dir: dir.to_path_buf(),
        })
    }

    pub fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::SeqCst)
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every article id in the index (for `index verify`).
    pub fn ids(&self) -> Result<BTreeSet<i64>, SearchError> {
        indexed_ids(&self.reader)
    }
}

/// Every file the committed segments need must exist (a deleted segment file would
/// otherwise surface only when a searcher reloads).
fn missing_segment_files(index: &Index, dir: &Path) -> Result<(), SearchError> {
    use tantivy::index::SegmentComponent as C;
    for meta in index.searchable_segment_metas()? {
        let mut components = vec![
            C::Postings,
            C::Positions,
            C::FastFields,
            C::FieldNorms,
            C::Terms,
            C::Store,
        ];
        // A segment without deletes has no delete file (its name would say opstamp 0).
        if meta.has_deletes() {
            components.push(C::Delete);
        }
        for c in components {
            let file = meta.relative_path(c);
            if !dir.join(&file).exists() {
                return Err(SearchError::Other(format!(
                    "segment file {} is missing",
                    file.display()
                )));
            }
        }
    }
    Ok(())
}

/// The index holds what readers may find: published, not deleted.
fn searchable(a: &Article) -> bool {
    a.deleted_at.is_none() && a.status == Status::Published
}

fn document(f: &Fields, a: &Article) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_u64(f.id, u64::try_from(a.id).unwrap_or(0));
    d.add_text(f.slug, &a.slug);
    d.add_text(f.title, &a.title);
    d.add_text(f.body, &a.body);
    d.add_text(f.text, &a.title);
    d.add_text(f.text, &a.body);
    if let Some(c) = &a.category {
        d.add_text(f.category, c);
    }
    for t in &a.tags {
        d.add_text(f.tags, t);
    }
    d.add_text(f.status, a.status.as_str());
    if let Ok(t) = time::OffsetDateTime::parse(
        &a.updated_at,
        &time::format_description::well_known::Rfc3339,
    ) {
        d.add_date(
            f.updated_at,
            DateTime::from_timestamp_millis(
                i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            ),
        );
    }
    d
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

    /// Wait until every article change committed to the database before this call is
    /// searchable (read-your-writes), for at most `limit`. Wakes the indexer but does
    /// not commit itself, so callers cannot force a commit per request. Returns whether
    /// the index caught up in time.
    pub async fn catch_up(&self, limit: std::time::Duration) -> Result<bool, SearchError> {
        let target = self.db.read(store::outbox_high_water).await?;
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
                .read(move |c| store::outbox_batch(c, after, limit))
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
            .write(move |tx| store::outbox_delete_through(tx, fed_through))
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

    /// Rebuild the index from the database beside the live one and swap it in. Runs
    /// between indexer batches; searches keep using the old index until the swap.
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
            .write(move |tx| store::outbox_delete_through(tx, seq))
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

/// The data directory's index-commit lock, held shared (see
/// [`crate::data_dir::DataDir::index_commit_guard`]).
async fn commit_guard(data_dir: &Path) -> Result<std::fs::File, SearchError> {
    let dd = crate::data_dir::DataDir::new(data_dir);
    tokio::task::spawn_blocking(move || dd.index_commit_guard(false))
        .await
        .map_err(|e| SearchError::Other(e.to_string()))?
        .map_err(|e| SearchError::Other(format!("cannot take the index commit lock: {e}")))
}

fn indexed_ids(reader: &IndexReader) -> Result<BTreeSet<i64>, SearchError> {
    let searcher = reader.searcher();
    let mut ids = BTreeSet::new();
    for seg in searcher.segment_readers() {
        let column = seg.fast_fields().u64("id")?;
        for doc in seg.doc_ids_alive() {
            if let Some(id) = column.first(doc) {
                ids.insert(i64::try_from(id).unwrap_or(i64::MAX));
            }
        }
    }
    Ok(ids)
}
