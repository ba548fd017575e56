//! The index in a backup: the files of its last commit, opened before the database
//! snapshot is taken (so merges and garbage collection cannot take them away), and what
//! the manifest says about them.

use std::fs::File;
use std::io;
use std::path::Path;

use super::{BackupError, IndexInfo};

/// The files of the index's last commit, opened (so later merges and garbage
/// collection cannot take them away), and `meta.json` as read.
pub(super) struct IndexFiles {
    pub(super) meta: Vec<u8>,
    pub(super) files: Vec<(String, File, u64)>,
    pub(super) bytes: u64,
    pub(super) info: IndexInfo,
}

impl IndexFiles {
    /// None when there is no index yet. Tantivy writes segment files once and replaces
    /// `meta.json` atomically, but a background merge may delete files of the meta we
    /// just read: then read it again.
    pub(super) fn open(dir: &Path) -> Result<Option<IndexFiles>, BackupError> {
        let meta_path = dir.join("meta.json");
        let mut last_err = None;
        for _ in 0..20 {
            let meta = match std::fs::read(&meta_path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(BackupError::io(meta_path.display().to_string())(e)),
            };
            let (names, info) = segment_files(dir, &meta)?;
            let mut files = Vec::with_capacity(names.len());
            let mut bytes = meta.len() as u64;
            let mut vanished = false;
            for name in names {
                match File::open(dir.join(&name)) {
                    Ok(f) => {
                        let size = f.metadata().map_err(BackupError::io(name.clone()))?.len();
                        bytes += size;
                        files.push((name, f, size));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        last_err = Some(name);
                        vanished = true;
                        break;
                    }
                    Err(e) => {
                        return Err(BackupError::io(dir.join(&name).display().to_string())(e));
                    }
                }
            }
            if !vanished {
                return Ok(Some(IndexFiles {
                    meta,
                    files,
                    bytes,
                    info,
                }));
            }
        }
        Err(BackupError::Other(format!(
            "the search index keeps changing under the backup (last missing file {}); try again",
            last_err.unwrap_or_default()
        )))
    }
}

/// The file names a tantivy `meta.json` needs, and what the index holds.
fn segment_files(dir: &Path, meta: &[u8]) -> Result<(Vec<String>, IndexInfo), BackupError> {
    let bad = |why: &str| BackupError::Other(format!("{}/meta.json: {why}", dir.display()));
    let v: serde_json::Value = serde_json::from_slice(meta).map_err(|e| bad(&e.to_string()))?;
    let segments = v["segments"].as_array().ok_or_else(|| bad("no segments"))?;
    let mut prefixes = Vec::new();
    let mut documents = 0u64;
    for seg in segments {
        let id = seg["segment_id"]
            .as_str()
            .ok_or_else(|| bad("segment without id"))?;
        let id = uuid::Uuid::parse_str(id).map_err(|e| bad(&e.to_string()))?;
        let max_doc = seg["max_doc"].as_u64().unwrap_or(0);
        let deleted = seg["deletes"]["num_deleted_docs"].as_u64().unwrap_or(0);
        let del_opstamp = seg["deletes"]["opstamp"].as_u64();
        documents += max_doc.saturating_sub(deleted);
        prefixes.push((id.simple().to_string(), del_opstamp));
    }
    let mut names = Vec::new();
    let listing = std::fs::read_dir(dir).map_err(BackupError::io(dir.display().to_string()))?;
    for item in listing {
        let item = item.map_err(BackupError::io(dir.display().to_string()))?;
        let name = item.file_name().to_string_lossy().into_owned();
        for (prefix, del_opstamp) in &prefixes {
            let Some(rest) = name
                .strip_prefix(prefix.as_str())
                .and_then(|r| r.strip_prefix('.'))
            else {
                continue;
            };
            let wanted = match rest.strip_suffix(".del") {
                // Older delete files of the segment are garbage waiting for collection.
                Some(opstamp) => del_opstamp.map(|o| o.to_string()).as_deref() == Some(opstamp),
                None => true,
            };
            if wanted {
                names.push(name.clone());
            }
        }
    }
    names.sort();
    let outbox_seq = v["payload"]
        .as_str()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| p["outbox_seq"].as_i64())
        .unwrap_or(0);
    Ok((
        names,
        IndexInfo {
            outbox_seq,
            documents,
        },
    ))
}
