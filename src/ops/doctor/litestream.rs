//! `doctor`'s look at a Litestream setup, without network: Litestream keeps its state
//! beside the database (`.appliance.db-litestream/`, the LTX files it made from the WAL
//! before shipping them) and adds `_litestream_lock` / `_litestream_seq` to it. From
//! the newest local LTX file and the database's last change it can tell whether
//! Litestream keeps up locally; whether the files reached the bucket only Litestream can
//! tell (`litestream ltx`), and the finding says so.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::{Findings, Level};
use crate::config::Config;

/// Litestream is behind when the database changed this much later than its newest file.
const BEHIND: Duration = Duration::from_secs(120);

fn newest_file(dir: &Path) -> Option<(SystemTime, String)> {
    let mut newest: Option<(SystemTime, String)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = meta.modified()
                && newest.as_ref().is_none_or(|(t, _)| m > *t)
            {
                newest = Some((m, e.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    newest
}

fn last_change(db: &Path) -> Option<SystemTime> {
    let wal = db.with_extension("db-wal");
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

pub(super) fn check(config: &Config, db: &Path, conn: &Connection, f: &mut Findings) {
    let name = db.file_name().map_or_else(
        || "appliance.db".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let state = db.with_file_name(format!(".{name}-litestream"));
    let marked = crate::db::inspect::has_object(conn, "_litestream_lock").unwrap_or(false);
    let checkpoints_off = config.database.checkpoint_interval_ms == 0;
    let how = format!(
        "`litestream ltx -config /etc/litestream.yml {}` lists what reached the replica",
        db.display()
    );
    if !state.is_dir() {
        if checkpoints_off {
            f.add(
                "litestream",
                Level::Warn,
                format!("database.checkpoint_interval_ms = 0 leaves WAL checkpoints to Litestream, but Litestream has no state beside {}: start it (systemctl start appliance-litestream), or set the interval back (1000) so the WAL stays bounded", db.display()),
            );
        } else if marked {
            f.add(
                "litestream",
                Level::Ok,
                "the database carries Litestream's tables (restored from a replica, or replicated before) but Litestream is not replicating it here",
            );
        }
        return;
    }
    let newest = newest_file(&state);
    let changed = last_change(db);
    let Some((at, file)) = newest else {
        f.add(
            "litestream",
            Level::Warn,
            format!(
                "Litestream is set up ({}) but has not written a file yet: is it running (systemctl status appliance-litestream)? {how}",
                state.display()
            ),
        );
        return;
    };
    let txid = file
        .split('-')
        .next_back()
        .map_or("?", |s| s.trim_end_matches(".ltx"));
    let behind = changed
        .and_then(|c| c.duration_since(at).ok())
        .filter(|d| *d > BEHIND);
    if let Some(d) = behind {
        f.add(
            "litestream",
            Level::Warn,
            format!(
                "the database changed {} s after Litestream's newest file (transaction {txid}, {}): is it running (systemctl status appliance-litestream)? {how}",
                d.as_secs(),
                ago(at)
            ),
        );
    } else if !checkpoints_off {
        f.add(
            "litestream",
            Level::Warn,
            format!("Litestream replicates this database (newest file: transaction {txid}, {}), but appliance checkpoints the WAL too: set database.checkpoint_interval_ms = 0 so that Litestream alone does; {how}", ago(at)),
        );
    } else {
        f.add(
            "litestream",
            Level::Ok,
            format!(
                "Litestream keeps up locally (newest file: transaction {txid}, {}); {how}",
                ago(at)
            ),
        );
    }
}
