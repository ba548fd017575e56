//! `appliance doctor`: one read-only pass over everything an operator may doubt, with
//! the server running or stopped. Each check answers ok / warn / fail with what to do.
//! Only read-only connections are opened; nothing is written, locked or repaired.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

mod database;
mod files;
mod litestream;

use database::{check_integrity, check_migrations, check_schema};

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::db::backups;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub level: Level,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// 0 all ok, 1 warnings, 2 failures.
    pub fn exit_code(&self) -> u8 {
        match self.level {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        }
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, check: &'static str, level: Level, detail: impl Into<String>) {
        self.0.push(Finding {
            check,
            level,
            detail: detail.into(),
        });
    }
}

/// Run every check.
pub fn diagnose(config: &Config) -> Diagnosis {
    let mut f = Findings(Vec::new());
    let data_dir = DataDir::new(&config.data_dir);
    check_config(config, &mut f);
    check_permissions(&data_dir, &mut f);
    check_disk(config, &data_dir, &mut f);
    files::check_signing_key(config, &mut f);
    files::check_leftovers(config, &mut f);
    let db_path = data_dir.db_path();
    if !db_path.is_file() {
        f.add(
            "database",
            Level::Fail,
            format!(
                "no database at {}; start the server once or run `appliance migrate run`",
                db_path.display()
            ),
        );
    } else {
        match crate::db::open_read_only(&db_path) {
            Err(e) => f.add(
                "database",
                Level::Fail,
                format!(
                    "cannot open {}: {e}; restore the newest backup",
                    db_path.display()
                ),
            ),
            Ok(conn) => {
                check_integrity(&conn, &mut f);
                check_migrations(&conn, &mut f);
                check_schema(&conn, &mut f);
                check_wal(&db_path, &mut f);
                litestream::check(config, &db_path, &conn, &mut f);
                check_index(&data_dir, &conn, &mut f);
                check_backups(&conn, config, &mut f);
            }
        }
    }
    let level = f.0.iter().map(|x| x.level).max().unwrap_or(Level::Ok);
    Diagnosis {
        level,
        findings: f.0,
    }
}

/// `doctor --online`: what needs the network (the off-site bucket), added to `d`.
pub async fn online(remote: &crate::config::RemoteConfig, d: &mut Diagnosis) {
    let finding = if !remote.enabled() {
        Finding {
            check: "offsite",
            level: Level::Ok,
            detail: "no off-site copies configured (backup.remote.bucket is empty)".into(),
        }
    } else {
        let res = match crate::replication::Remote::new(remote) {
            Ok(r) => r.probe().await,
            Err(e) => Err(e),
        };
        match res {
            Ok(detail) => Finding {
                check: "offsite",
                level: Level::Ok,
                detail,
            },
            Err(e) => Finding {
                check: "offsite",
                level: Level::Fail,
                detail: e.to_string(),
            },
        }
    };
    d.level = d.level.max(finding.level);
    d.findings.push(finding);
}

fn check_config(config: &Config, f: &mut Findings) {
    let mut warnings = Vec::new();
    if !config.server.listen.ip().is_loopback() {
        warnings.push(format!(
            "server.listen {} is reachable from other hosts, and this build has no logins yet: keep it on 127.0.0.1 behind a proxy",
            config.server.listen
        ));
    }
    if config.metrics.enabled && !config.metrics.listen.ip().is_loopback() {
        warnings.push(format!(
            "metrics.listen {} is reachable from other hosts",
            config.metrics.listen
        ));
    }
    if config.backup.schedule.trim().is_empty() {
        warnings.push("backup.schedule is empty: no scheduled backups".into());
    }
    if config.backups_dir().starts_with(&config.data_dir) {
        warnings.push(format!(
            "backups are kept on the data disk ({}); set backup.dir to another disk or copy them off the machine",
            config.backups_dir().display()
        ));
    }
    if warnings.is_empty() {
        f.add("config", Level::Ok, "no warnings");
    } else {
        f.add("config", Level::Warn, warnings.join("; "));
    }
}

fn check_permissions(data_dir: &DataDir, f: &mut Findings) {
    let root = data_dir.root();
    let Ok(meta) = std::fs::metadata(root) else {
        f.add(
            "permissions",
            Level::Fail,
            format!("data directory {} does not exist", root.display()),
        );
        return;
    };
    let owner = meta.uid();
    let mut problems = Vec::new();
    if meta.permissions().mode() & 0o007 != 0 {
        problems.push(format!(
            "{} is open to other users (mode {:o}); chmod 0750",
            root.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let mut paths = vec![
        data_dir.db_path(),
        data_dir.backups_dir(),
        data_dir.index_dir(),
    ];
    for suffix in ["-wal", "-shm", "-auth"] {
        paths.push(std::path::PathBuf::from(format!(
            "{}{suffix}",
            data_dir.db_path().display()
        )));
    }
    for p in paths {
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        if m.uid() != owner {
            problems.push(format!(
                "{} is owned by uid {}, the data directory by uid {owner}: the server may not be able to use it (chown -R)",
                p.display(),
                m.uid()
            ));
        }
        if m.is_file() && m.permissions().mode() & 0o007 != 0 {
            problems.push(format!(
                "{} is readable by other users (mode {:o}); chmod o-rwx",
                p.display(),
                m.permissions().mode() & 0o777
            ));
        }
    }
    if problems.is_empty() {
        f.add(
            "permissions",
            Level::Ok,
            format!(
                "{} and its files: owner uid {owner}, no access for others",
                root.display()
            ),
        );
    } else {
        f.add("permissions", Level::Warn, problems.join("; "));
    }
}

fn check_disk(config: &Config, data_dir: &DataDir, f: &mut Findings) {
    let root = data_dir.root();
    let space = match crate::fsutil::disk_space(root) {
        Ok(v) => v,
        Err(e) => {
            f.add("disk", Level::Warn, format!("cannot read free space: {e}"));
            return;
        }
    };
    let free = space.free;
    let inodes = (space.inodes_total > 0).then_some((space.inodes_free, space.inodes_total));
    let inode_text = inodes.map_or_else(String::new, |(a, t)| format!(", {a} of {t} inodes free"));
    let mib = free / (1024 * 1024);
    let low_inodes = inodes.is_some_and(|(a, t)| a < t / 20);
    if free < config.health.min_free_disk_bytes {
        f.add(
            "disk",
            Level::Fail,
            format!("{mib} MiB free{inode_text}: below health.min_free_disk_bytes; free space now"),
        );
    } else if free < config.health.warn_free_disk_bytes || low_inodes {
        f.add(
            "disk",
            Level::Warn,
            format!("{mib} MiB free{inode_text}: running low; free space or grow the disk"),
        );
    } else {
        f.add("disk", Level::Ok, format!("{mib} MiB free{inode_text}"));
    }
}

fn check_wal(db: &Path, f: &mut Findings) {
    let wal = std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len());
    let size = std::fs::metadata(db).map_or(0, |m| m.len());
    let mib = wal / (1024 * 1024);
    // A WAL bigger than the database (and not small) means checkpoints are not keeping up.
    if wal > 64 * 1024 * 1024 && wal > size {
        f.add(
            "wal",
            Level::Warn,
            format!("the WAL is {mib} MiB, larger than the database: checkpoints are not keeping up (a long reader?)"),
        );
    } else {
        f.add("wal", Level::Ok, format!("{mib} MiB"));
    }
}

fn check_index(data_dir: &DataDir, conn: &Connection, f: &mut Findings) {
    let ids = match crate::search::ids_offline(data_dir.root()) {
        Ok(ids) => ids,
        Err(e) => {
            return f.add(
                "search_index",
                Level::Fail,
                format!("the index cannot be read ({e}); `appliance index rebuild` (server stopped) or restart the server"),
            );
        }
    };
    match crate::search::compare_ids(&ids, conn) {
        Ok(v) if v.is_consistent() => f.add(
            "search_index",
            Level::Ok,
            format!(
                "{} documents for {} published articles, {} change(s) waiting",
                v.index_documents, v.database_articles, v.outbox_pending
            ),
        ),
        Ok(v) => f.add(
            "search_index",
            Level::Fail,
            format!(
                "drift: {} missing from the index, {} not in the database; `appliance index rebuild`",
                v.missing_from_index.len(),
                v.not_in_database.len()
            ),
        ),
        Err(e) => f.add("search_index", Level::Fail, format!("cannot compare: {e}")),
    }
}

fn check_backups(conn: &Connection, config: &Config, f: &mut Findings) {
    if !backups::has_tables(conn).unwrap_or(false) {
        return f.add(
            "backups",
            Level::Warn,
            "no backup bookkeeping yet (migration V3 pending)",
        );
    }
    let (last, last_ok, verifications) = match (
        backups::last_run(conn),
        backups::last_success(conn),
        backups::verifications(conn),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return f.add("backups", Level::Warn, "cannot read the backup history"),
    };
    if let Some(r) = &last
        && !r.ok
    {
        return f.add(
            "backups",
            Level::Fail,
            format!(
                "the last backup failed at {}: {}",
                r.started_at,
                r.error.as_deref().unwrap_or("")
            ),
        );
    }
    let Some(ok) = last_ok else {
        return f.add(
            "backups",
            Level::Warn,
            "no backup yet: run `appliance backup --verify`",
        );
    };
    let age_h = time::OffsetDateTime::parse(
        &ok.started_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (time::OffsetDateTime::now_utc() - t).whole_hours())
    .unwrap_or(i64::MAX);
    let verified = verifications.get(&ok.name);
    let max = i64::try_from(config.backup.max_age_hours).unwrap_or(i64::MAX);
    let verified_text = match verified {
        Some(v) if v.ok => "verified".to_string(),
        Some(v) if !v.found_faulty() => v.error.clone().unwrap_or_default(),
        Some(v) => format!("verification FAILED: {}", v.error.as_deref().unwrap_or("")),
        None => "not verified".to_string(),
    };
    let detail = format!("last backup {} ({age_h} h ago), {verified_text}", ok.name);
    if verified.is_some_and(|v| v.found_faulty()) {
        f.add(
            "backups",
            Level::Fail,
            format!("{detail}; take a new backup"),
        );
    } else if (max > 0 && age_h > max) || !verified.is_some_and(|v| v.ok) {
        f.add(
            "backups",
            Level::Warn,
            format!("{detail}; run `appliance backup --verify`"),
        );
    } else {
        f.add("backups", Level::Ok, detail);
    }
}
