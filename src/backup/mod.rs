//! Backups: one archive `appliance-<UTC time>-<trigger>.tar.zst` holding a consistent
//! copy of the database, the search index at a committed point and `manifest.json`
//! (DESIGN.md, Backups). Plain blocking library functions, used alike by the CLI, the
//! scheduler and the HTTP API: [`snapshot::create`], [`verify::verify`],
//! [`retention::prune`], [`restore::restore`], and the one job that strings them
//! together ([`job::run`]); the server runs it from `ops::backups`. Nothing here serves
//! HTTP or parses arguments.

mod index_files;
pub mod job;
pub mod leftovers;
pub mod pending;
pub mod restore;
pub mod retention;
pub mod signing;
pub mod snapshot;
pub mod verify;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::DbError;

/// The archive layout version written into every manifest; readers refuse others.
pub const FORMAT_VERSION: u32 = 1;
/// Archive members.
pub const DB_MEMBER: &str = "appliance.db";
pub const INDEX_PREFIX: &str = "index/";
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// `sha256sum`-style checksum of the manifest itself: without it a damaged manifest
/// field that no file checksum covers (a date, a row count) would go unnoticed.
pub const MANIFEST_SUM_MEMBER: &str = "manifest.json.sha256";

const NAME_PREFIX: &str = "appliance-";
const NAME_SUFFIX: &str = ".tar.zst";
const TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is already running (lock {0}); try again when it has finished")]
    AlreadyRunning(PathBuf),
    #[error(
        "not enough free space in {dir}: {free} bytes free, about {needed} needed (expected archive size plus backup.min_free_margin_bytes); free some space or set backup.dir to another disk"
    )]
    InsufficientSpace {
        dir: PathBuf,
        free: u64,
        needed: u64,
    },
    /// Too little room to extract an archive's database and index for the deep checks:
    /// nothing is known against the archive.
    #[error(
        "not enough free space in {dir} to check the archive's database and index: {free} bytes free, about {needed} needed (their uncompressed size plus backup.min_free_margin_bytes); the archive was not found faulty; free some space there"
    )]
    NoScratchSpace {
        dir: PathBuf,
        free: u64,
        needed: u64,
    },
    #[error("no backup {0}")]
    NotFound(String),
    #[error("{name} is not a backup archive name (expected appliance-<time>-<trigger>.tar.zst)")]
    BadName { name: String },
    #[error("{archive}: {problem}")]
    Invalid { archive: PathBuf, problem: String },
    /// The archive is intact as far as anyone can tell, but nothing proves this appliance
    /// wrote it (or it was altered and re-summed): see `signing`.
    #[error("{archive}: {problem}")]
    Unauthenticated { archive: PathBuf, problem: String },
    #[error(
        "{archive} was made by a newer appliance (schema version {archive_version}, this binary knows up to {supported}); install that version or newer to restore it"
    )]
    NewerSchema {
        archive: PathBuf,
        archive_version: i64,
        supported: i64,
    },
    #[error("no database at {0}: nothing to back up")]
    NoDatabase(PathBuf),
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Other(String),
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let context = context.into();
        move |source| BackupError::Io { context, source }
    }
    /// The message with an archive named by its file name, not its path: for API
    /// answers and the records they show, which never reveal server paths.
    pub fn brief(&self) -> String {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        match self {
            BackupError::Invalid { archive, problem }
            | BackupError::Unauthenticated { archive, problem } => {
                format!("{}: {problem}", name(archive))
            }
            BackupError::NewerSchema {
                archive,
                archive_version,
                supported,
            } => BackupError::NewerSchema {
                archive: PathBuf::from(name(archive)),
                archive_version: *archive_version,
                supported: *supported,
            }
            .to_string(),
            other => other.to_string(),
        }
    }
    fn invalid(archive: &Path, problem: impl Into<String>) -> BackupError {
        BackupError::Invalid {
            archive: archive.to_path_buf(),
            problem: problem.into(),
        }
    }
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Db(e.into())
    }
}

/// Who asked for a backup; part of the archive name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `appliance backup` on the command line.
    Manual,
    /// `POST /api/admin/backups` with an API token.
    Api,
    /// The scheduler inside `serve`.
    Scheduled,
    /// "Back up now" in the admin UI (`POST /api/admin/backups` in a browser session).
    Ui,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Api => "api",
            Trigger::Scheduled => "scheduled",
            Trigger::Ui => "ui",
        }
    }
    fn parse(s: &str) -> Option<Trigger> {
        [
            Trigger::Manual,
            Trigger::Api,
            Trigger::Scheduled,
            Trigger::Ui,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// The archive name for a backup started at `at`.
pub fn archive_name(at: OffsetDateTime, trigger: Trigger) -> String {
    let t = at
        .to_offset(time::UtcOffset::UTC)
        .format(TIME_FORMAT)
        .unwrap_or_default();
    format!("{NAME_PREFIX}{t}-{}{NAME_SUFFIX}", trigger.as_str())
}

/// Time and trigger from an archive name; None for anything else in the directory.
pub fn parse_name(name: &str) -> Option<(OffsetDateTime, Trigger)> {
    let core = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    let (t, trigger) = core.rsplit_once('-')?;
    let at = time::PrimitiveDateTime::parse(t, TIME_FORMAT)
        .ok()?
        .assume_utc();
    Some((at, Trigger::parse(trigger)?))
}

/// What the manifest says about one archived file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What the archive's index is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexInfo {
    /// The index's committed outbox position: rows above it are replayed after a restore.
    pub outbox_seq: i64,
    /// Live documents in the archived index.
    pub documents: u64,
}

/// `manifest.json`: what is in the archive, and how to check it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub app_version: String,
    /// Highest applied migration of the archived database.
    pub schema_version: i64,
    pub created_at: String,
    pub trigger: Trigger,
    pub database: DatabaseInfo,
    /// None when the data directory had no index yet (it is built on the next start).
    pub index: Option<IndexInfo>,
    /// Rows per table of the archived database.
    pub row_counts: BTreeMap<String, i64>,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseInfo {
    pub page_size: u64,
    pub page_count: u64,
}

impl Manifest {
    /// Bytes of the archived files (uncompressed).
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// One archive in the backups directory.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub trigger: Trigger,
    pub size_bytes: u64,
}

/// The archives in `dir`, newest first. Temporary files, pre-migration copies and
/// anything else not named like an archive are left out.
pub fn list(dir: &Path) -> Result<Vec<Entry>, BackupError> {
    let mut out = Vec::new();
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(BackupError::io(dir.display().to_string())(e)),
    };
    for item in read {
        let item = item.map_err(BackupError::io(dir.display().to_string()))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let Some((created_at, trigger)) = parse_name(&name) else {
            continue;
        };
        let meta = item
            .metadata()
            .map_err(BackupError::io(item.path().display().to_string()))?;
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            name,
            created_at,
            trigger,
            size_bytes: meta.len(),
        });
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    Ok(out)
}

/// An archive given as a name in the backups directory or as a path.
pub fn resolve(backups_dir: &Path, name_or_path: &str) -> Result<PathBuf, BackupError> {
    let as_path = Path::new(name_or_path);
    let path = if name_or_path.contains('/') {
        as_path.to_path_buf()
    } else {
        let file = if name_or_path.ends_with(NAME_SUFFIX) {
            name_or_path.to_string()
        } else {
            format!("{name_or_path}{NAME_SUFFIX}")
        };
        backups_dir.join(file)
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(BackupError::NotFound(path.display().to_string()))
    }
}

/// Held while one backup is being written; a second one is refused with
/// [`BackupError::AlreadyRunning`], across processes too (an `flock` in the backups dir).
#[derive(Debug)]
pub struct BackupLock {
    dir: PathBuf,
    _file: File,
}

impl BackupLock {
    pub fn acquire(backups_dir: &Path) -> Result<BackupLock, BackupError> {
        crate::data_dir::create_private_dir(backups_dir)
            .map_err(BackupError::io(backups_dir.display().to_string()))?;
        let path = backups_dir.join(".backup.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(BackupError::io(path.display().to_string()))?;
        match file.try_lock() {
            Ok(()) => Ok(BackupLock {
                dir: backups_dir.to_path_buf(),
                _file: file,
            }),
            Err(TryLockError::WouldBlock) => Err(BackupError::AlreadyRunning(path)),
            Err(TryLockError::Error(e)) => Err(BackupError::io(path.display().to_string())(e)),
        }
    }

    /// The backups directory this lock guards.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Progress of a long step: (bytes done, bytes in all).
pub type Progress<'a> = Option<&'a (dyn Fn(u64, u64) + Sync)>;

/// The newest schema this binary can open.
pub fn supported_schema_version() -> i64 {
    crate::db::migrations::embedded()
        .last()
        .map(|m| m.version)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let at = time::macros::datetime!(2026-11-22 03:17:00.123 UTC);
        let name = archive_name(at, Trigger::Scheduled);
        assert_eq!(name, "appliance-20261122T031700.123Z-scheduled.tar.zst");
        assert_eq!(parse_name(&name), Some((at, Trigger::Scheduled)));
        for other in [
            "pre-migrate-v1-to-v2-x.db",
            ".appliance-20261122T031700.123Z-api.tar.zst.12.tmp",
            "appliance-20261122T031700.123Z-nobody.tar.zst",
            "appliance-garbage-api.tar.zst",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn second_lock_is_refused_as_already_running() {
        let dir = tempfile::tempdir().unwrap();
        let first = BackupLock::acquire(dir.path()).unwrap();
        let err = BackupLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, BackupError::AlreadyRunning(_)), "{err}");
        assert!(err.to_string().contains("already running"));
        drop(first);
        BackupLock::acquire(dir.path()).unwrap();
    }
}
