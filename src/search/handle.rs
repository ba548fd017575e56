//! The open index: reader and writer of one index directory, the outbox position its
//! last commit applied (the commit payload), and the checks that it is whole.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};

use super::schema::{Fields, build_schema, fields_of};
use super::{SearchError, directory, stem};
use crate::config::SearchConfig;

/// The payload stored with each index commit: everything up to this outbox seq is in.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(super) struct Payload {
    outbox_seq: i64,
}

pub(super) fn read_payload(index: &Index) -> Result<i64, SearchError> {
    let metas = index.load_metas()?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<Payload>(p).ok())
        .map(|p| p.outbox_seq)
        .unwrap_or(0))
}

pub(super) fn commit_with_seq(writer: &mut IndexWriter, seq: i64) -> Result<(), SearchError> {
    let payload = serde_json::to_string(&Payload { outbox_seq: seq })
        .map_err(|e| SearchError::Other(e.to_string()))?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

/// One opened index: reader for searches, the single writer for the indexer.
pub struct IndexHandle {
    pub(super) index: Index,
    pub(super) reader: IndexReader,
    pub(super) fields: Fields,
    pub(super) writer: Mutex<IndexWriter>,
    pub(super) applied_seq: AtomicI64,
    pub(super) dir: PathBuf,
}

impl IndexHandle {
    /// Open an existing index and prove it usable: the schema is this version's with
    /// the configured analyzer, every segment file is present, a searcher opens.
    pub(super) fn open(dir: &Path, config: &SearchConfig) -> Result<IndexHandle, SearchError> {
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

    pub(super) fn from_index(
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
pub(super) fn missing_segment_files(index: &Index, dir: &Path) -> Result<(), SearchError> {
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

pub(super) fn indexed_ids(reader: &IndexReader) -> Result<BTreeSet<i64>, SearchError> {
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
