//! A restore asked for while the server runs (the admin UI): the request is written to
//! `<data>/restore-requested.json`, the server stops and starts again in the same
//! process, and `serve` carries the restore out at start, before it opens anything,
//! with the same code as `appliance restore` (verify, keep the old data aside, swap,
//! undo on failure). The outcome is written to `<data>/restore-result.json` of the data
//! directory that is live afterwards (the restored one, or the old one when it failed),
//! for the UI to show.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::data_dir::DataDir;

const REQUEST_FILE: &str = "restore-requested.json";
const RESULT_FILE: &str = "restore-result.json";
/// A request older than this is dropped at start, not carried out: nobody waits for it.
const STALE_SECS: i64 = 3600;

/// What an admin asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    /// The archive's name in the backups directory.
    pub archive: String,
    /// Who asked (email), for the audit log and the result.
    pub requested_by: String,
    pub requested_at: String,
}

/// How a requested restore ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub archive: String,
    pub requested_by: String,
    pub requested_at: String,
    pub finished_at: String,
    pub ok: bool,
    /// Why it failed (the live data was left as it was).
    pub error: Option<String>,
    /// Where the data that was replaced now is.
    pub moved_aside: Option<PathBuf>,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), BackupError> {
    let tmp = crate::fsutil::temp_path_for(path);
    let text = serde_json::to_vec_pretty(value).map_err(|e| BackupError::Other(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(BackupError::io(tmp.display().to_string()))?;
    crate::fsutil::persist(&tmp, path).map_err(BackupError::io(path.display().to_string()))
}

/// Record a request (atomically: temp file, fsync, rename).
pub fn request(data_dir: &DataDir, r: &Request) -> Result<(), BackupError> {
    write_json(&data_dir.root().join(REQUEST_FILE), r)
}

/// Take the pending request, if any (it is removed, so a restore is tried once). A
/// request older than an hour is dropped with a warning.
pub fn take(data_dir: &DataDir) -> Result<Option<Request>, BackupError> {
    let path = data_dir.root().join(REQUEST_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BackupError::io(path.display().to_string())(e)),
    };
    std::fs::remove_file(&path).map_err(BackupError::io(path.display().to_string()))?;
    let r: Request = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable restore request");
            return Ok(None);
        }
    };
    let age = crate::clock::parse(&r.requested_at)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds());
    if age.is_none_or(|a| a > STALE_SECS) {
        tracing::warn!(archive = %r.archive, requested_at = %r.requested_at, "dropping a stale restore request");
        return Ok(None);
    }
    Ok(Some(r))
}

/// Record how the restore ended, in the data directory live now.
pub fn record(data_dir: &DataDir, o: &Outcome) -> Result<(), BackupError> {
    write_json(&data_dir.root().join(RESULT_FILE), o)
}

/// The last requested restore's outcome, if any.
pub fn last(data_dir: &DataDir) -> Option<Outcome> {
    let text = std::fs::read(data_dir.root().join(RESULT_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}
