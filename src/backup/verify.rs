//! Checking an archive completely, in two passes over it.
//!
//! The first pass streams the archive and writes nothing: the zstd frame and its
//! checksum (nothing may follow it), every member's name, size and sha256, then the
//! manifest's signature before anything the manifest says is believed (`signing`), the
//! manifest against its own checksum, and every file against the manifest. Only an
//! archive that passed gets the second pass: with room for it counted first, the
//! database and index are extracted (into a scratch directory, or the restore's staging
//! directory), hashed again against the same manifest, the database must pass
//! `PRAGMA integrity_check` with the manifest's row counts and a schema this binary
//! knows, and the index must open with the manifest's document count.
//!
//! A bad archive is [`BackupError::Invalid`] (or `Unauthenticated`) naming the member and
//! what is wrong; too little room for the second pass is [`BackupError::NoScratchSpace`],
//! which says nothing against the archive.

use std::collections::{BTreeMap, BTreeSet};
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

/// The bookkeeping members, kept in memory by the first pass (never extracted).
const BOOKKEEPING: [&str; 3] = [MANIFEST_MEMBER, MANIFEST_SUM_MEMBER, SIG_MEMBER];
/// A manifest, its sum or its signature larger than this is not ours.
const MAX_BOOKKEEPING_BYTES: u64 = 16 << 20;

/// A member as found in the archive.
struct Found {
    size: u64,
    sha256: String,
}

/// What one pass over an archive found.
#[derive(Default)]
struct Members {
    found: BTreeMap<String, Found>,
    /// The bookkeeping members' bytes.
    kept: BTreeMap<String, Vec<u8>>,
}

/// An archive that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// Who made it, as far as its signature tells.
    pub origin: Origin,
}

/// Verify `archive` completely. The second pass needs the archive's database and index,
/// uncompressed, plus `margin` bytes free under `scratch_parent` (a scratch directory is
/// created there and removed).
pub fn verify(
    archive: &Path,
    scratch_parent: &Path,
    margin: u64,
    trust: &Trust,
    progress: Progress<'_>,
) -> Result<Verified, BackupError> {
    let (manifest, origin) = scan(archive, trust, half(progress, 0))?;
    room_for(&manifest, scratch_parent, margin)?;
    let scratch = tempfile::Builder::new()
        .prefix(".verify-")
        .tempdir_in(scratch_parent)
        .map_err(BackupError::io(scratch_parent.display().to_string()))?;
    // Claimed while in use: clean-up removes only scratch that a killed process left.
    let _claim = crate::fsutil::claim(scratch.path())
        .map_err(BackupError::io(scratch.path().display().to_string()))?;
    deep(
        archive,
        scratch.path(),
        false,
        manifest,
        origin,
        half(progress, 1),
    )
}

/// Verify `archive` and leave its database and index in the empty directory `dest`
/// (the restore's staging directory). With `durable`, every file and directory is
/// fsynced (the restore keeps them).
pub fn verify_into(
    archive: &Path,
    dest: &Path,
    durable: bool,
    margin: u64,
    trust: &Trust,
    progress: Progress<'_>,
) -> Result<Verified, BackupError> {
    let (manifest, origin) = scan(archive, trust, half(progress, 0))?;
    room_for(&manifest, dest, margin)?;
    deep(archive, dest, durable, manifest, origin, half(progress, 1))
}

/// Progress of one of the two passes as half of the whole.
fn half(progress: Progress<'_>, pass: u64) -> impl Fn(u64, u64) + Sync + '_ {
    move |done: u64, total: u64| {
        if let Some(p) = progress {
            p(pass * total + done, 2 * total);
        }
    }
}

/// The first pass: everything but the database and index checks, writing nothing.
fn scan(
    archive: &Path,
    trust: &Trust,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<(Manifest, Origin), BackupError> {
    let members = read_members(archive, None, &progress)?;
    let invalid = |p: String| BackupError::invalid(archive, p);
    let Some(manifest_bytes) = members.kept.get(MANIFEST_MEMBER) else {
        return Err(invalid(format!(
            "{MANIFEST_MEMBER} is missing (the archive is truncated or not an appliance backup)"
        )));
    };
    let origin = trust
        .check(
            manifest_bytes,
            members.kept.get(SIG_MEMBER).map(Vec::as_slice),
        )
        .map_err(|problem| BackupError::Unauthenticated {
            archive: archive.to_path_buf(),
            problem,
        })?;
    let Some(sum) = members.kept.get(MANIFEST_SUM_MEMBER) else {
        return Err(invalid(format!(
            "{MANIFEST_SUM_MEMBER} is missing (the archive is truncated or not an appliance backup)"
        )));
    };
    let actual = hex::encode(Sha256::digest(manifest_bytes));
    let sum = String::from_utf8_lossy(sum);
    let expected = sum.split_whitespace().next().unwrap_or_default();
    if expected != actual {
        return Err(invalid(format!(
            "{MANIFEST_MEMBER} does not match {MANIFEST_SUM_MEMBER} (sha256 {actual} vs {expected}): the manifest is damaged"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
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
    check_files(archive, &manifest, &members.found)?;
    Ok((manifest, origin))
}

/// Room under `dir` for the archive's database and index, uncompressed, plus `margin`.
fn room_for(manifest: &Manifest, dir: &Path, margin: u64) -> Result<(), BackupError> {
    let needed = manifest.total_bytes() + margin;
    let free = crate::fsutil::disk_space(dir)
        .map_err(BackupError::io(dir.display().to_string()))?
        .free;
    if free < needed {
        return Err(BackupError::NoScratchSpace {
            dir: dir.to_path_buf(),
            free,
            needed,
        });
    }
    Ok(())
}

/// The second pass: extract the database and index into `dest`, check them against the
/// manifest the first pass accepted, and open them.
fn deep(
    archive: &Path,
    dest: &Path,
    durable: bool,
    manifest: Manifest,
    origin: Origin,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<Verified, BackupError> {
    let members = read_members(archive, Some((dest, durable)), &progress)?;
    // The same file, read again: it must still be what the accepted manifest describes.
    check_files(archive, &manifest, &members.found)?;
    check_database(archive, &dest.join(DB_MEMBER), &manifest)?;
    if let Some(index) = &manifest.index {
        let index_dir = dest.join("index");
        let docs = tantivy::Index::open_in_dir(&index_dir)
            // Manual reloads: the default policy watches meta.json from a thread of its
            // own, which logs an error when the scratch directory goes.
            .and_then(|i| {
                i.reader_builder()
                    .reload_policy(tantivy::ReloadPolicy::Manual)
                    .try_into()
            })
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

/// The member names an archive may hold; anything else (absolute paths, `..`, links,
/// nested directories) is refused before it touches the disk.
fn allowed(path: &str) -> bool {
    if path == DB_MEMBER || BOOKKEEPING.contains(&path) {
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

/// One pass over the archive: every member's size and sha256, the bookkeeping members'
/// bytes, and with `extract_to` the other members written there.
fn read_members(
    archive: &Path,
    extract_to: Option<(&Path, bool)>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Members, BackupError> {
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
        progress: Some(progress),
        last_report: 0,
    };
    // An archive is one zstd frame; anything after it is refused below.
    let decoder = zstd::Decoder::new(counted).map_err(damaged)?.single_frame();
    let mut tar = tar::Archive::new(decoder);
    let mut members = Members::default();
    let mut made_index_dir = false;
    let mut buf = vec![0u8; 256 * 1024];
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
        if members.found.contains_key(&path) {
            return Err(BackupError::invalid(
                archive,
                format!("member {path} appears twice"),
            ));
        }
        let bookkeeping = BOOKKEEPING.contains(&path.as_str());
        if bookkeeping && entry.size() > MAX_BOOKKEEPING_BYTES {
            return Err(BackupError::invalid(
                archive,
                format!(
                    "{path} is {} bytes: not an appliance manifest",
                    entry.size()
                ),
            ));
        }
        let mut out = match extract_to {
            Some((dest, _)) if !bookkeeping => {
                if path.starts_with(INDEX_PREFIX) && !made_index_dir {
                    crate::data_dir::create_private_dir(&dest.join("index"))
                        .map_err(BackupError::io(dest.display().to_string()))?;
                    made_index_dir = true;
                }
                Some((dest.join(&path), private_file(&dest.join(&path))?))
            }
            _ => None,
        };
        let mut kept = Vec::new();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(damaged)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Some((target, f)) = &mut out {
                f.write_all(&buf[..n])
                    .map_err(BackupError::io(target.display().to_string()))?;
            }
            if bookkeeping {
                kept.extend_from_slice(&buf[..n]);
            }
            size += n as u64;
        }
        if let (Some((target, f)), Some((_, true))) = (&out, extract_to) {
            f.sync_all()
                .map_err(BackupError::io(target.display().to_string()))?;
        }
        if bookkeeping {
            members.kept.insert(path.clone(), kept);
        }
        let sha256 = hex::encode(hasher.finalize());
        members.found.insert(path, Found { size, sha256 });
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
    if let Some((dest, true)) = extract_to {
        for d in [dest.to_path_buf(), dest.join("index")] {
            if d.is_dir() {
                crate::fsutil::fsync_dir(&d).map_err(BackupError::io(d.display().to_string()))?;
            }
        }
    }
    Ok(members)
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

/// Every file the manifest lists is there with its size and sha256, and nothing else is.
fn check_files(
    archive: &Path,
    manifest: &Manifest,
    found: &BTreeMap<String, Found>,
) -> Result<(), BackupError> {
    let invalid = |p: String| BackupError::invalid(archive, p);
    let mut listed = BTreeSet::new();
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
        if !BOOKKEEPING.contains(&path.as_str()) && !listed.contains(path.as_str()) {
            return Err(invalid(format!(
                "{path} is in the archive but not in the manifest"
            )));
        }
    }
    Ok(())
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
