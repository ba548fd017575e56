//! Restoring an archive into the data directory. Refused while a server holds the
//! directory; the archive is extracted beside the data directory (same file system,
//! so the swap is a rename) and verified completely before anything is touched; the
//! current directory is then moved aside to `<data>.pre-restore-<time>` (kept) and the
//! restored one renamed into its place. Backups kept inside the data directory move
//! over to the restored one. The next `serve` applies pending migrations (an older
//! snapshot) and replays the archived outbox into the archived index, so search
//! matches the restored database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::signing::{KEY_FILE, Key, Origin, Trust};
use super::{BackupError, Manifest, Progress};
use crate::data_dir::DataDir;

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// Who made the archive, as far as its signature tells.
    pub origin: Origin,
    pub dry_run: bool,
    /// Where the replaced data directory was moved (None: dry run, or there was none).
    pub moved_aside: Option<PathBuf>,
    /// Row counts of the current database, for comparison (None: no database).
    pub current_row_counts: Option<BTreeMap<String, i64>>,
    /// Migrations the next start applies to the restored database.
    pub pending_migrations: i64,
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Verify only: change nothing.
    pub dry_run: bool,
    /// How the archive's signature is checked.
    pub trust: Trust,
    /// Free space kept beside the data directory on top of the restored data.
    pub margin: u64,
    /// A key to install as the restored directory's `backup-signing.key` when the data
    /// directory has none to carry over (the key given with `--key-file` on a new machine).
    pub adopt_key: Option<Key>,
    /// Fail on purpose at this step (one of [`STEPS`]), for the tests that prove a
    /// failure at any step leaves the live data as it was.
    #[doc(hidden)]
    pub fail_at: Option<String>,
}

/// The steps of a restore, in order: extract and verify into a staging directory,
/// install the signing key there, carry the backups over, move the live directory
/// aside, move the restored one into its place, make the renames durable.
pub const STEPS: [&str; 6] = ["verify", "key", "backups", "aside", "swap", "sync"];

impl Options {
    fn step(&self, name: &str) -> Result<(), BackupError> {
        match &self.fail_at {
            Some(f) if f == name => Err(BackupError::Other(format!(
                "failed on purpose at step `{name}` (a test)"
            ))),
            _ => Ok(()),
        }
    }
}

/// Restore `archive` into `data_dir`. `backups_dir` is where archives are kept: when it
/// is inside the data directory it is carried over to the restored one, and so is the
/// data directory's backup signing key (it is never in an archive).
pub fn restore(
    data_dir: &DataDir,
    backups_dir: &Path,
    archive: &Path,
    opts: &Options,
    progress: Progress<'_>,
) -> Result<RestoreReport, BackupError> {
    let dry_run = opts.dry_run;
    let root = data_dir.root();
    let existed = root.exists();
    // Refuse before any work while a server (or another restore) owns the directory.
    let lock = if existed {
        Some(data_dir.lock()?)
    } else {
        None
    };
    let parent = parent_of(root)?;
    let base = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BackupError::Other(format!("{} has no directory name", root.display())))?;
    let stamp = stamp(OffsetDateTime::now_utc());
    let staging = parent.join(format!(".{base}.restore-{stamp}.tmp"));
    crate::data_dir::create_private_dir(&staging)
        .map_err(BackupError::io(staging.display().to_string()))?;
    let cleanup = RemoveDirOnDrop(Some(staging.clone()));
    // Locked from the start, so clean-up can tell it from one a killed restore left,
    // and kept locked through the swap, so a server started right after it waits for
    // this process to finish.
    let restored = DataDir::new(&staging);
    let staged_lock = restored.lock()?;

    opts.step("verify")?;
    let verified =
        super::verify::verify_into(archive, &staging, true, opts.margin, &opts.trust, progress)?;
    let (manifest, origin) = (verified.manifest, verified.origin);
    // The manifest and its sum and signature describe the archive, not the data
    // directory: verification never extracts them.
    let current_row_counts = if data_dir.db_path().is_file() {
        crate::db::open_read_only(&data_dir.db_path())
            .ok()
            .and_then(|c| crate::db::inspect::row_counts(&c).ok())
    } else {
        None
    };
    let pending_migrations = super::supported_schema_version() - manifest.schema_version;
    let mut report = RestoreReport {
        archive: archive.to_path_buf(),
        manifest,
        origin,
        dry_run,
        moved_aside: None,
        current_row_counts,
        pending_migrations,
    };
    if dry_run {
        return Ok(report);
    }

    // The signing key stays with the data directory, or a given one is adopted.
    opts.step("key")?;
    let key_now = root.join(KEY_FILE);
    if key_now.is_file() {
        Key::read(&key_now)?.install(&staging.join(KEY_FILE))?;
    } else if let Some(k) = &opts.adopt_key {
        k.install(&staging.join(KEY_FILE))?;
    }
    // Root restoring a service user's directory: the restored files become that user's,
    // so the service can still open, prune and back them up.
    if existed && crate::fsutil::running_as_root() {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(root).map_err(BackupError::io(root.display().to_string()))?;
        if owner.uid() != 0 {
            crate::fsutil::chown_tree(&staging, owner.uid(), owner.gid()).map_err(
                BackupError::io(format!("giving {} to its owner", staging.display())),
            )?;
        }
    }
    // From here on each step is undone if a later one fails, so the live data is where
    // and as it was.
    let backups_inside = existed && backups_dir.starts_with(root) && backups_dir.is_dir();
    let mut carried: Option<PathBuf> = None;
    let undo_backups = |carried: &Option<PathBuf>| {
        if let Some(target) = carried
            && let Err(e) = std::fs::rename(target, backups_dir)
        {
            tracing::error!(error = %e, from = %target.display(), to = %backups_dir.display(), "cannot move the backups back");
        }
    };
    if existed {
        let aside = parent.join(format!("{base}.pre-restore-{stamp}"));
        if backups_inside {
            opts.step("backups")?;
            let rel = backups_dir
                .strip_prefix(root)
                .map_err(|e| BackupError::Other(e.to_string()))?;
            let target = staging.join(rel);
            if let Some(p) = target.parent() {
                crate::data_dir::create_private_dir(p)
                    .map_err(BackupError::io(p.display().to_string()))?;
            }
            std::fs::rename(backups_dir, &target).map_err(BackupError::io(format!(
                "moving {} over",
                backups_dir.display()
            )))?;
            carried = Some(target);
        }
        if let Err(e) = opts.step("aside").and_then(|()| {
            std::fs::rename(root, &aside)
                .map_err(BackupError::io(format!("moving {} aside", root.display())))
        }) {
            undo_backups(&carried);
            return Err(e);
        }
        report.moved_aside = Some(aside);
    }
    let swapped = opts.step("swap").and_then(|()| {
        std::fs::rename(&staging, root).map_err(BackupError::io(format!(
            "moving the restored data into {}",
            root.display(),
        )))
    });
    if let Err(e) = swapped {
        if let Some(aside) = &report.moved_aside
            && let Err(back) = std::fs::rename(aside, root)
        {
            tracing::error!(error = %back, aside = %aside.display(), "cannot move the data back; it is in the directory named");
            return Err(BackupError::Other(format!(
                "{e}; and the previous data could not be moved back: it is in {}",
                aside.display()
            )));
        }
        undo_backups(&carried);
        return Err(e);
    }
    if let Err(e) = opts.step("sync").and_then(|()| {
        crate::fsutil::fsync_dir(&parent).map_err(BackupError::io(parent.display().to_string()))
    }) {
        // Undo the swap: the restored directory back to staging (removed on return), the
        // live one back into place.
        let _ = std::fs::rename(root, &staging);
        if let Some(aside) = &report.moved_aside {
            let _ = std::fs::rename(aside, root);
        }
        undo_backups(&carried);
        return Err(e);
    }
    std::mem::forget(cleanup);
    drop(staged_lock);
    drop(lock);
    tracing::info!(archive = %archive.display(), aside = ?report.moved_aside, "restored");
    Ok(report)
}

fn parent_of(root: &Path) -> Result<PathBuf, BackupError> {
    let abs = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(BackupError::io("current directory"))?
            .join(root)
    };
    Ok(abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/")))
}

fn stamp(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// Removes a staging directory on every early return.
struct RemoveDirOnDrop(Option<PathBuf>);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
