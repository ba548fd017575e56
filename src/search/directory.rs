//! The live index's directory: tantivy's `MmapDirectory`, except for small reads of the
//! document stores (`*.store`: the stored title, slug and body of every article, read
//! one 4 KiB block per search hit for its snippet). Through the memory map, every
//! block a search ever touched stayed in the process's resident set: measured at
//! 126 MiB of a 287 MiB RSS after 16 s of searches over 100k articles, and growing
//! towards the whole store. Read with `pread` instead, those blocks live in the
//! kernel's page cache (still cached, but not charged to the process's RSS), and
//! tantivy's own per-segment cache of decompressed blocks keeps hot hits in memory.
//!
//! Large reads (a merge copying a whole store) still go through the map: read with
//! `pread` they would be copied into one heap buffer of the store's size.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::HasLen;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes, WatchCallback,
    WatchHandle, WritePtr,
};

/// Reads up to this size go through `pread`; larger ones through the map.
const PREAD_MAX: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct IndexDirectory {
    mmap: MmapDirectory,
    root: PathBuf,
}

impl IndexDirectory {
    pub fn open(root: &Path) -> Result<IndexDirectory, tantivy::TantivyError> {
        Ok(IndexDirectory {
            mmap: MmapDirectory::open(root)?,
            root: root.to_path_buf(),
        })
    }
}

#[derive(Debug)]
struct StoreFile {
    mapped: Arc<dyn FileHandle>,
    file: File,
    len: usize,
}

impl HasLen for StoreFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for StoreFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.len() > PREAD_MAX {
            return self.mapped.read_bytes(range);
        }
        if range.end > self.len || range.start > range.end {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read {range:?} beyond a {}-byte store file", self.len),
            ));
        }
        let mut buf = vec![0; range.len()];
        self.file.read_exact_at(&mut buf, range.start as u64)?;
        Ok(OwnedBytes::new(buf))
    }
}

impl Directory for IndexDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let mapped = self.mmap.get_file_handle(path)?;
        if path.extension().and_then(|e| e.to_str()) != Some("store") {
            return Ok(mapped);
        }
        let full = self.root.join(path);
        let file = File::open(&full).map_err(|e| OpenReadError::wrap_io_error(e, full.clone()))?;
        Ok(Arc::new(StoreFile {
            len: mapped.len(),
            mapped,
            file,
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.mmap.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.mmap.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.mmap.open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.mmap.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.mmap.atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.mmap.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.mmap.acquire_lock(lock)
    }

    fn watch(&self, callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.mmap.watch(callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_reads_match_the_map_and_other_files_are_mapped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..3 * PREAD_MAX).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("seg.store"), &data).expect("write");
        std::fs::write(dir.path().join("seg.idx"), &data[..100]).expect("write");
        let d = IndexDirectory::open(dir.path()).expect("open");
        let store = d.get_file_handle(Path::new("seg.store")).expect("store");
        assert_eq!(store.len(), data.len());
        // A small read (pread), a large one (the map), the file's end.
        for r in [10..4106, 0..2 * PREAD_MAX + 7, data.len() - 5..data.len()] {
            assert_eq!(
                store.read_bytes(r.clone()).expect("read").as_slice(),
                &data[r]
            );
        }
        assert!(store.read_bytes(data.len() - 5..data.len() + 1).is_err());
        let idx = d.get_file_handle(Path::new("seg.idx")).expect("idx");
        assert_eq!(
            idx.read_bytes(0..100).expect("read").as_slice(),
            &data[..100]
        );
        assert!(d.get_file_handle(Path::new("missing.store")).is_err());
    }
}
