//! The file checks of `doctor` beyond the database: the backup signing key, and what
//! interrupted work left behind (`backup::leftovers`).

use std::os::unix::fs::PermissionsExt;

use crate::backup::leftovers::{self, Kind};
use crate::backup::signing::Location;
use crate::config::Config;

use super::{Findings, Level};

pub(super) fn check_signing_key(config: &Config, f: &mut Findings) {
    let at = Location::of(&config.backup, &config.data_dir);
    let path = at.path().display().to_string();
    match at.load() {
        Ok(None) => f.add(
            "backup_key",
            Level::Ok,
            format!("no backup signing key yet: the first backup creates {path}"),
        ),
        Err(e) => f.add(
            "backup_key",
            Level::Fail,
            format!("{e}: backups cannot be taken or verified; fix backup.signing_key_file or the credential"),
        ),
        Ok(Some(key)) => {
            let mode = std::fs::metadata(at.path())
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                f.add(
                    "backup_key",
                    Level::Warn,
                    format!("{path} is readable by others (mode {mode:o}): whoever reads it can sign a forged archive; chmod 0600"),
                );
            } else {
                f.add(
                    "backup_key",
                    Level::Ok,
                    format!("archives are signed with key {} ({path}); keep a copy off this machine", key.id()),
                );
            }
        }
    }
}

pub(super) fn check_leftovers(config: &Config, f: &mut Findings) {
    let found = leftovers::find(&config.data_dir, &config.backups_dir(), false);
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for l in &found {
        let what = format!("{} ({})", l.path.display(), mib(l.bytes));
        match (l.kind, l.in_use) {
            (_, true) => {}
            (Kind::PreRestore, _) => kept.push(what),
            (kind, false) => stale.push(format!("{} {what}", kind.as_str())),
        }
    }
    if !stale.is_empty() {
        f.add(
            "leftovers",
            Level::Warn,
            format!(
                "left by interrupted work: {}; a restart of the server or `appliance cleanup --apply` removes them",
                stale.join(", ")
            ),
        );
    } else {
        f.add("leftovers", Level::Ok, "nothing left by interrupted work");
    }
    if !kept.is_empty() {
        f.add(
            "pre_restore",
            Level::Ok,
            format!(
                "kept from a restore: {}; delete once the restored data is confirmed",
                kept.join(", ")
            ),
        );
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
