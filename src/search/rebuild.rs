//! Replacing and checking the index: a full build from a database snapshot beside the
//! live index, swapped in atomically (`index.rebuild/` → `index/`, old one renamed aside
//! and removed, directory fsynced), and the comparison of indexed ids with the database.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use tantivy::{Index, IndexWriter, ReloadPolicy};

use super::{
    IndexHandle, Progress, SearchError, Verification, build_schema, commit_with_seq, document,
    indexed_ids, missing_segment_files, searchable,
};
use crate::config::SearchConfig;
use crate::db::{Db, DbError, articles as store};
use crate::fsutil;

/// The ids in the index under `data_dir`, read without taking its writer lock (CLI
/// `index verify`, which may run beside the server).
pub fn ids_offline(data_dir: &Path) -> Result<BTreeSet<i64>, SearchError> {
    let dir = data_dir.join("index");
    let index = Index::open_in_dir(&dir)?;
    missing_segment_files(&index, &dir)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    indexed_ids(&reader)
}

pub(super) async fn verify_handle(h: &IndexHandle, db: &Db) -> Result<Verification, SearchError> {
    let index_ids = h.ids()?;
    verify_ids(index_ids, db).await
}

/// Compare a set of indexed ids with the database.
pub async fn verify_ids(index_ids: BTreeSet<i64>, db: &Db) -> Result<Verification, SearchError> {
    Ok(db.read(move |c| compare_ids(&index_ids, c)).await?)
}

/// Compare a set of indexed ids with the database through `conn` (one snapshot).
pub fn compare_ids(
    index_ids: &BTreeSet<i64>,
    conn: &rusqlite::Connection,
) -> Result<Verification, DbError> {
    let tx = conn.unchecked_transaction()?;
    let mut live = BTreeSet::new();
    store::for_each_live(&tx, |a| {
        if searchable(&a) {
            live.insert(a.id);
        }
        Ok(())
    })?;
    let pending: BTreeSet<i64> = crate::db::outbox::outbox_after(&tx, 0, u32::MAX)?
        .into_iter()
        .map(|r| r.article_id)
        .collect();
    Ok(Verification {
        database_articles: live.len() as u64,
        index_documents: index_ids.len() as u64,
        outbox_pending: pending.len() as u64,
        missing_from_index: live
            .difference(index_ids)
            .filter(|id| !pending.contains(id))
            .copied()
            .collect(),
        not_in_database: index_ids
            .difference(&live)
            .filter(|id| !pending.contains(id))
            .copied()
            .collect(),
    })
}

/// Build a complete index from a database snapshot in `index.rebuild/`, then swap it into
/// `index/` (old one renamed aside, directory fsynced, old one removed). Returns the
/// new handle and the index-commit lock, taken before the swap: the caller removes the
/// outbox rows the new index holds before dropping it.
pub(super) async fn build_fresh(
    data_dir: &Path,
    config: &SearchConfig,
    db: &Db,
    progress: Option<Progress>,
) -> Result<(IndexHandle, std::fs::File), SearchError> {
    let live_dir = data_dir.join("index");
    let tmp_dir = data_dir.join("index.rebuild");
    let old_dir = data_dir.join("index.old");
    let started = Instant::now();
    for d in [&tmp_dir, &old_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }
    std::fs::create_dir_all(&tmp_dir)?;
    // A rebuild that fails half-way takes its new index with it.
    let mut unfinished = RemoveOnDrop(Some(tmp_dir.clone()));
    let (schema, fields) = build_schema(config.analyzer);
    // 4 KiB doc-store blocks instead of 16: fetching one ~2 KiB article for a hit then
    // decompresses a quarter as much (profiled: 11% of a query's CPU with 16 KiB).
    let settings = tantivy::IndexSettings {
        docstore_blocksize: 4096,
        ..Default::default()
    };
    let index = Index::create(
        super::directory::IndexDirectory::open(&tmp_dir)?,
        schema,
        settings,
    )?;
    super::stem::register(&index);
    let memory = usize::try_from(config.writer_memory_bytes).unwrap_or(usize::MAX);
    let writer: IndexWriter = index.writer_with_num_threads(2, memory)?;
    let (mut writer, seq, count) = db
        .read(move |c| {
            // One snapshot: the articles and the outbox high-water mark agree.
            let tx = c.unchecked_transaction()?;
            let seq = crate::db::outbox::outbox_high_water(&tx)?;
            let total = store::count_live(&tx)?;
            let mut done = 0u64;
            let mut err = None;
            store::for_each_live(&tx, |a| {
                if searchable(&a)
                    && let Err(e) = writer.add_document(document(&fields, &a))
                {
                    err = Some(e);
                }
                done += 1;
                if let Some(p) = &progress
                    && (done.is_multiple_of(1000) || done == total)
                {
                    p(done, total);
                }
                Ok(())
            })?;
            if let Some(e) = err {
                return Err(DbError::Other(format!("indexing failed: {e}")));
            }
            Ok((writer, seq, done))
        })
        .await?;
    let tmp = tmp_dir.clone();
    let guard = super::commit_guard(data_dir).await?;
    tokio::task::spawn_blocking(move || -> Result<(), SearchError> {
        commit_with_seq(&mut writer, seq)?;
        writer.wait_merging_threads()?;
        if live_dir.exists() {
            std::fs::rename(&live_dir, &old_dir)?;
        }
        std::fs::rename(&tmp, &live_dir)?;
        if let Some(parent) = live_dir.parent() {
            fsutil::fsync_dir(parent)?;
        }
        if old_dir.exists() {
            std::fs::remove_dir_all(&old_dir)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| SearchError::Other(e.to_string()))??;
    unfinished.0 = None;
    let dir = data_dir.join("index");
    let cfg = config.clone();
    let handle = tokio::task::spawn_blocking(move || IndexHandle::open(&dir, &cfg))
        .await
        .map_err(|e| SearchError::Other(e.to_string()))??;
    tracing::info!(
        documents = count,
        outbox_seq = seq,
        ms = started.elapsed().as_millis() as u64,
        "search index built from the database"
    );
    Ok((handle, guard))
}

/// Removes a directory when dropped, unless disarmed (`.0 = None`).
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.0.take()
            && d.exists()
            && let Err(e) = std::fs::remove_dir_all(&d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "cannot remove an unfinished index");
        }
    }
}

/// Rebuild with no server running (CLI): same swap, no live handle to replace.
pub async fn rebuild_offline(
    data_dir: &Path,
    config: &SearchConfig,
    db: &Db,
    progress: Option<Progress>,
) -> Result<u64, SearchError> {
    let (h, _commit_guard) = build_fresh(data_dir, config, db, progress).await?;
    let seq = h.applied_seq();
    db.write(move |tx| crate::db::outbox::outbox_delete_through(tx, seq))
        .await?;
    Ok(h.num_docs())
}
