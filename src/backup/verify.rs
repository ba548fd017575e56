//! Checking an archive completely: every member is extracted (into a scratch directory,
//! or the restore's staging directory) while its sha256 is computed, then the manifest's
//! signature is checked before anything the manifest says is believed (`signing`), the
//! manifest against its own checksum and against every file, the database inside
//! passes `PRAGMA integrity_check` with the manifest's row counts and a schema this
//! binary knows, and the index opens with the manifest's document count.
//! Any problem is [`BackupError::Invalid`] naming the member and what is wrong.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::signing::{Origin, SIG_MEMBER, Trust};
use super::snapshot::HashingReader;
use super::{
    BackupError, DB_MEMBER, FORMAT_VERSION, INDEX_PREFIX, MANIFEST_MEMBER, MANIFEST_SUM_MEMBER,
    Manifest, Progress,
};

/// A member as found in the archive.
struct Found {
    size: u64,
    sha256: String,
}

/// An archive that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// Who made it, as far as its signature tells.
    pub origin: Origin,
}

/// Verify `archive` using a scratch directory created (and removed) under
/// `scratch_parent`, which needs room for the uncompressed contents.
pub fn verify(
    archive: &Path,
    scratch_parent: &Path,
    trust: &Trust,
    progress: Progress<'_>,
) -> Result<Verified, BackupError> {
    let scratch = tempfile::Builder::new()
        .prefix(".verify-")
        .tempdir_in(scratch_parent)
        .map_err(BackupError::io(scratch_parent.display().to_string()))?;
    // Claimed while in use: clean-up removes only scratch that a killed process left.
    let _claim = crate::fsutil::claim(scratch.path())
        .map_err(BackupError::io(scratch.path().display().to_string()))?;
    verify_into(archive, scratch.path(), false, trust, progress)
}

/// Extract `archive` into the empty directory `dest` and verify it there. With
/// `durable`, every file and directory is fsynced (the restore keeps them).
pub fn verify_into(
    archive: &Path,
    dest: &Path,
    durable: bool,
    trust: &Trust,
    progress: Progress<'_>,
) -> Result<Verified, BackupError> {
    let found = extract(archive, dest, durable, progress)?;
    let origin = check_signature(archive, dest, &found, trust)?;
    let manifest = check_manifest(archive, dest, &found)?;
    check_database(archive, &dest.join(DB_MEMBER), &manifest)?;
    if let Some(index) = &manifest.index {
        let index_dir = dest.join("index");
        let docs = tantivy::Index::open_in_dir(&index_dir)
            .and_then(|i| i.reader())
            .map(|r| r.searcher().num_docs())
            .map_err(|e| BackupError::invalid(archive, format!("the index does not open: {e}")))?;
        if docs != index.documents {
            return Err(BackupError::invalid(
                archive,
                format!(
                    "the index holds {docs} documents, the manifest says {}",
                    index.documents
                ),
            ));
        }
    } else if dest.join("index").exists() {
        return Err(BackupError::invalid(
            archive,
            "index files present but the manifest lists no index",
        ));
    }
    Ok(Verified { manifest, origin })
}

/// The manifest's signature, checked before anything the manifest says is believed.
fn check_signature(
    archive: &Path,
    dest: &Path,
    found: &BTreeMap<String, Found>,
    trust: &Trust,
) -> Result<Origin, BackupError> {
    let invalid = |p: String| BackupError::invalid(archive, p);
    if !found.contains_key(MANIFEST_MEMBER) {
        return Err(invalid(format!(
            "{MANIFEST_MEMBER} is missing (the archive is truncated or not an appliance backup)"
        )));
    }
    let manifest = std::fs::read(dest.join(MANIFEST_MEMBER))
        .map_err(|e| invalid(format!("{MANIFEST_MEMBER}: {e}")))?;
    let signature = match found.contains_key(SIG_MEMBER) {
        true => Some(
            std::fs::read(dest.join(SIG_MEMBER))
                .map_err(|e| invalid(format!("{SIG_MEMBER}: {e}")))?,
        ),
        false => None,
    };
    trust
        .check(&manifest, signature.as_deref())
        .map_err(|problem| BackupError::Unauthenticated {
            archive: archive.to_path_buf(),
            problem,
        })
}

/// The member names an archive may hold; anything else (absolute paths, `..`, links,
/// nested directories) is refused before it touches the disk.
fn allowed(path: &str) -> bool {
    if [DB_MEMBER, MANIFEST_MEMBER, MANIFEST_SUM_MEMBER, SIG_MEMBER].contains(&path) {
        return true;
    }
    match path.strip_prefix(INDEX_PREFIX) {
        Some(file) => {
            let p = Path::new(file);
            !file.is_empty()
                && p.components().count() == 1
                && matches!(p.components().next(), Some(Component::Normal(_)))
        }
        None => false,
    }
}

fn extract(
    archive: &Path,
    dest: &Path,
    durable: bool,
    progress: Progress<'_>,
) -> Result<BTreeMap<String, Found>, BackupError> {
    let damaged = |e: io::Error| {
        BackupError::invalid(archive, format!("the archive is damaged or truncated: {e}"))
    };
    let file = File::open(archive).map_err(BackupError::io(archive.display().to_string()))?;
    let total = file
        .metadata()
        .map_err(BackupError::io(archive.display().to_string()))?
        .len();
    let counted = HashingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: None,
        read: 0,
        done_before: 0,
        total,
        progress,
        last_report: 0,
    };
    // An archive is one zstd frame; anything after it is refused below.
    let decoder = zstd::Decoder::new(counted).map_err(damaged)?.single_frame();
    let mut tar = tar::Archive::new(decoder);
    let mut found = BTreeMap::new();
    let mut made_index_dir = false;
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular || !allowed(&path) {
            return Err(BackupError::invalid(
                archive,
                format!("unexpected member {path:?} (not part of an appliance backup)"),
            ));
        }
        if found.contains_key(&path) {
            return Err(BackupError::invalid(
                archive,
                format!("member {path} appears twice"),
            ));
        }
        if path.starts_with(INDEX_PREFIX) && !made_index_dir {
            crate::data_dir::create_private_dir(&dest.join("index"))
                .map_err(BackupError::io(dest.display().to_string()))?;
            made_index_dir = true;
        }
        let target = dest.join(&path);
        let mut out = private_file(&target)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(damaged)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(BackupError::io(target.display().to_string()))?;
            size += n as u64;
        }
        if durable {
            out.sync_all()
                .map_err(BackupError::io(target.display().to_string()))?;
        }
        found.insert(
            path,
            Found {
                size,
                sha256: hex::encode(hasher.finalize()),
            },
        );
    }
    // Read to the end of the zstd frame so its checksum is checked too; then nothing may
    // follow it (appended junk, or a second frame someone added).
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(damaged)?;
    let mut after = rest.finish();
    let mut one = [0u8; 1];
    if after.read(&mut one).map_err(damaged)? > 0 {
        return Err(BackupError::invalid(
            archive,
            "trailing data after the archive's zstd frame (appended to, or not written by appliance)",
        ));
    }
    if durable {
        for d in [dest.to_path_buf(), dest.join("index")] {
            if d.is_dir() {
                crate::fsutil::fsync_dir(&d).map_err(BackupError::io(d.display().to_string()))?;
            }
        }
    }
    Ok(found)
}

/// Create a file that only the owner and group may read: archives hold user data.
pub(crate) fn private_file(path: &Path) -> Result<File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(BackupError::io(path.display().to_string()))
}

fn check_manifest(
    archive: &Path,
    dest: &Path,
    found: &BTreeMap<String, Found>,
) -> Result<Manifest, BackupError> {
    let invalid = |p: String| BackupError::invalid(archive, p);
    let (Some(m), Some(_)) = (found.get(MANIFEST_MEMBER), found.get(MANIFEST_SUM_MEMBER)) else {
        return Err(invalid(format!(
            "{MANIFEST_MEMBER} or {MANIFEST_SUM_MEMBER} is missing (the archive is truncated or not an appliance backup)"
        )));
    };
    let sum = std::fs::read_to_string(dest.join(MANIFEST_SUM_MEMBER))
        .map_err(|e| invalid(format!("{MANIFEST_SUM_MEMBER}: {e}")))?;
    let expected = sum.split_whitespace().next().unwrap_or_default();
    if expected != m.sha256 {
        return Err(invalid(format!(
            "{MANIFEST_MEMBER} does not match {MANIFEST_SUM_MEMBER} (sha256 {} vs {expected}): the manifest is damaged",
            m.sha256
        )));
    }
    let bytes = std::fs::read(dest.join(MANIFEST_MEMBER))
        .map_err(|e| invalid(format!("{MANIFEST_MEMBER}: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{MANIFEST_MEMBER} is not a valid manifest: {e}")))?;
    if manifest.format != FORMAT_VERSION {
        return Err(invalid(format!(
            "archive format {} is not supported (this binary reads format {FORMAT_VERSION})",
            manifest.format
        )));
    }
    let supported = super::supported_schema_version();
    if manifest.schema_version > supported {
        return Err(BackupError::NewerSchema {
            archive: archive.to_path_buf(),
            archive_version: manifest.schema_version,
            supported,
        });
    }
    let mut listed = std::collections::BTreeSet::new();
    for f in &manifest.files {
        listed.insert(f.path.as_str());
        let Some(got) = found.get(&f.path) else {
            return Err(invalid(format!(
                "{} is listed in the manifest but missing",
                f.path
            )));
        };
        if got.size != f.size {
            return Err(invalid(format!(
                "{}: size {} bytes, the manifest says {}",
                f.path, got.size, f.size
            )));
        }
        if got.sha256 != f.sha256 {
            return Err(invalid(format!(
                "{}: checksum mismatch (sha256 {}, the manifest says {})",
                f.path, got.sha256, f.sha256
            )));
        }
    }
    if !listed.contains(DB_MEMBER) {
        return Err(invalid(format!("the manifest lists no {DB_MEMBER}")));
    }
    for path in found.keys() {
        let bookkeeping = [MANIFEST_MEMBER, MANIFEST_SUM_MEMBER, SIG_MEMBER];
        if !bookkeeping.contains(&path.as_str()) && !listed.contains(path.as_str()) {
            return Err(invalid(format!(
                "{path} is in the archive but not in the manifest"
            )));
        }
    }
    Ok(manifest)
}

fn check_database(archive: &Path, db: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let invalid = |p: String| BackupError::invalid(archive, format!("{DB_MEMBER}: {p}"));
    let conn = crate::db::inspect::open_unchanged(db).map_err(|e| invalid(e.to_string()))?;
    let problems = crate::db::damage(&conn, true, 10).map_err(|e| invalid(e.to_string()))?;
    if !problems.is_empty() {
        return Err(invalid(format!("integrity_check: {}", problems.join("; "))));
    }
    let version = crate::db::inspect::schema_version(&conn).map_err(|e| invalid(e.to_string()))?;
    if version != manifest.schema_version {
        return Err(invalid(format!(
            "schema version {version}, the manifest says {}",
            manifest.schema_version
        )));
    }
    let counts = crate::db::inspect::row_counts(&conn).map_err(|e| invalid(e.to_string()))?;
    if counts != manifest.row_counts {
        let diff: Vec<String> = manifest
            .row_counts
            .iter()
            .filter(|(t, n)| counts.get(*t) != Some(n))
            .map(|(t, n)| {
                format!(
                    "{t}: {} rows, manifest {n}",
                    counts.get(t).copied().unwrap_or(0)
                )
            })
            .collect();
        return Err(invalid(format!(
            "row counts differ from the manifest ({})",
            diff.join(", ")
        )));
    }
    Ok(())
}
