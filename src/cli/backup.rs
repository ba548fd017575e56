//! `appliance backup [create] | list | verify | prune` and `appliance restore`: thin
//! wrappers over `crate::backup` that add progress bars on a terminal, record runs and
//! verifications in the database (beside a running server too: one short write), and
//! print what happened.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::ops::Actor;
use crate::db::audit::{self, Outcome};
use anyhow::Context;
use clap::{Args, Subcommand};
use rusqlite::{Connection, OpenFlags};

use crate::backup::retention::{self, Policy};
use crate::backup::snapshot::{self, CreateOptions};
use crate::backup::{self, BackupError, BackupLock, Trigger, restore, runner, verify};
use crate::config::Config;
use crate::data_dir::{DataDir, DataDirError};
use crate::db::backups::{self as store, Verification};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct CreateArgs {
    /// Verify the new archive right away (extract and check everything).
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now (the same as bare `appliance backup`); works while `serve` runs.
    Create(CreateArgs),
    /// List archives: name, time, size, trigger, verified.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check an archive completely: checksums, manifest, database integrity, index.
    Verify {
        /// Archive name in the backups directory, or a path.
        archive: String,
    },
    /// Apply retention (backup.keep_last / keep_daily / keep_weekly).
    Prune {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Archive name in the backups directory, or a path.
    pub archive: String,
    /// Only verify the archive and report what would change.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run_backup(config: &Config, args: &BackupArgs) -> anyhow::Result<()> {
    match &args.command {
        None => create(config, args.create),
        Some(BackupCommand::Create(c)) => create(config, *c),
        Some(BackupCommand::List { json }) => list(config, *json),
        Some(BackupCommand::Verify { archive }) => verify_cmd(config, archive),
        Some(BackupCommand::Prune { dry_run }) => prune(config, *dry_run),
    }
}

/// Run `f` on a read-write connection to the database for bookkeeping; None when there
/// is no database or it has no bookkeeping tables yet (never migrated to V3).
fn bookkeeping<T>(
    config: &Config,
    f: impl FnOnce(&Connection) -> Result<T, crate::db::DbError>,
) -> anyhow::Result<Option<T>> {
    let path = DataDir::new(&config.data_dir).db_path();
    if !path.is_file() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(Duration::from_millis(config.database.busy_timeout_ms))?;
    if !store::has_tables(&conn)? {
        return Ok(None);
    }
    Ok(Some(f(&conn)?))
}

/// Append an audit entry from the CLI when the database has the audit table (a
/// database restored from before V4 gets it at the next start); failures are warned.
pub(super) fn audit_cli(config: &Config, event: &audit::Event) {
    let path = DataDir::new(&config.data_dir).db_path();
    if !path.is_file() {
        return;
    }
    let res = Connection::open(&path)
        .map_err(crate::db::DbError::from)
        .and_then(|c| {
            c.busy_timeout(Duration::from_millis(config.database.busy_timeout_ms))?;
            if audit::has_table(&c)? {
                audit::record(&c, event)?;
            }
            Ok(())
        });
    if let Err(e) = res {
        eprintln!("warning: cannot write the audit log: {e}");
    }
}

fn bytes_progress() -> indicatif::ProgressBar {
    let pb = super::articles::progress(0, "");
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// The progress callback of the library functions, drawing on `pb`.
fn reporter(pb: &indicatif::ProgressBar) -> impl Fn(u64, u64) + Sync + '_ {
    move |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    }
}

fn create(config: &Config, args: CreateArgs) -> anyhow::Result<()> {
    create_for(config, args.verify, false)
}

/// Take a backup (and verify it when `verify`); `quiet` prints nothing to stdout (for
/// commands with JSON output, such as `cleanup --apply --json`).
pub(super) fn create_for(config: &Config, verify: bool, quiet: bool) -> anyhow::Result<()> {
    macro_rules! say {
        ($($t:tt)*) => {
            if !quiet {
                println!($($t)*);
            }
        };
    }
    let data_dir = DataDir::new(&config.data_dir);
    if !data_dir.db_path().is_file() {
        return Err(BackupError::NoDatabase(data_dir.db_path()).into());
    }
    // Without a server, hold the data directory so that none starts half-way; with one,
    // back up beside it (WAL readers never block it).
    let _dir_lock = match data_dir.lock() {
        Ok(l) => Some(l),
        Err(DataDirError::Locked { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let backups_dir = config.backups_dir();
    let lock = BackupLock::acquire(&backups_dir)?;
    let previous_ratio = bookkeeping(config, store::last_success)?
        .flatten()
        .and_then(|r| runner::ratio(&r));
    let pb = bytes_progress();
    let report = reporter(&pb);
    let opts = CreateOptions {
        trigger: Trigger::Manual,
        compression_level: config.backup.compression_level,
        min_free_margin_bytes: config.backup.min_free_margin_bytes,
        previous_ratio,
        progress: Some(&report),
    };
    let started_at = time::OffsetDateTime::now_utc();
    let created = snapshot::create(&lock, &data_dir, &opts);
    pb.finish_and_clear();
    let run = runner::run_record(&created, Trigger::Manual, started_at);
    let recorded = bookkeeping(config, |c| store::record_run(c, &run))?.is_some();
    let event = match &created {
        Ok(c) => Actor::cli()
            .event("backup.create", Outcome::Success)
            .target(&c.name)
            .details(serde_json::json!({"trigger": "manual", "bytes": c.size_bytes})),
        Err(e) => Actor::cli()
            .event("backup.create", Outcome::Failure)
            .details(serde_json::json!({"trigger": "manual", "error": e.to_string()})),
    };
    audit_cli(config, &event);
    let created = created?;
    let secs = created.duration.as_secs_f64();
    let source = created.manifest.total_bytes();
    say!(
        "backup written: {} ({} bytes from {} bytes, {:.1} s, {:.0} MiB/s)",
        created.path.display(),
        created.size_bytes,
        source,
        secs,
        source as f64 / (1024.0 * 1024.0) / secs.max(1e-6)
    );
    if !recorded {
        say!(
            "note: the database has no backup bookkeeping yet (run `appliance migrate run`); this run is not recorded"
        );
    }
    if verify {
        verify_quiet(config, &created.name, quiet)?;
    }
    let verified = verified_names(config)?;
    let plan = retention::prune(&backups_dir, Policy::from(&config.backup), &verified, false)?;
    for name in &plan.delete {
        say!("retention removed {name}");
    }
    Ok(())
}

fn verified_names(config: &Config) -> anyhow::Result<HashSet<String>> {
    Ok(bookkeeping(config, store::verifications)?
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| v.ok)
        .map(|(n, _)| n)
        .collect())
}

fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let entries = backup::list(&dir)?;
    let verifications = bookkeeping(config, store::verifications)?.unwrap_or_default();
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                v["verification"] =
                    serde_json::to_value(verifications.get(&e.name)).unwrap_or_default();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no backups in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<48} {:<20} {:>12} {:<9} VERIFIED",
        "NAME", "CREATED (UTC)", "SIZE", "TRIGGER"
    );
    for e in &entries {
        let verified = match verifications.get(&e.name) {
            Some(v) if v.ok => format!("yes, {}", v.verified_at),
            Some(v) => format!("FAILED: {}", v.error.as_deref().unwrap_or("")),
            None => "not yet".into(),
        };
        let created = e
            .created_at
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        println!(
            "{:<48} {:<20} {:>12} {:<9} {verified}",
            e.name,
            created,
            e.size_bytes,
            e.trigger.as_str()
        );
    }
    Ok(())
}

fn verify_cmd(config: &Config, archive: &str) -> anyhow::Result<()> {
    verify_quiet(config, archive, false)
}

fn verify_quiet(config: &Config, archive: &str, quiet: bool) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let path = backup::resolve(&dir, archive)?;
    crate::data_dir::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let pb = bytes_progress();
    let report = reporter(&pb);
    let res = verify::verify(&path, &dir, Some(&report));
    pb.finish_and_clear();
    // Record the result for archives of the backups directory.
    if path.parent() == Some(dir.as_path())
        && let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned())
    {
        let v = Verification {
            verified_at: crate::clock::now(),
            ok: res.is_ok(),
            error: res.as_ref().err().map(ToString::to_string),
        };
        bookkeeping(config, |c| store::record_verification(c, &name, &v))?;
    }
    let m = res?;
    let rows: Vec<String> = m
        .row_counts
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    if quiet {
        return Ok(());
    }
    println!(
        "OK {}: created {} ({}), schema v{}, {} files, {} bytes; index {}; rows {}",
        path.display(),
        m.created_at,
        m.trigger.as_str(),
        m.schema_version,
        m.files.len(),
        m.total_bytes(),
        m.index.as_ref().map_or_else(
            || "none".to_string(),
            |i| format!("{} documents", i.documents)
        ),
        rows.join(" ")
    );
    Ok(())
}

fn prune(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let verified = verified_names(config)?;
    let plan = retention::prune(&dir, Policy::from(&config.backup), &verified, dry_run)?;
    if !dry_run {
        audit_cli(
            config,
            &Actor::cli()
                .event("backup.prune", Outcome::Success)
                .details(serde_json::json!({"deleted": plan.delete, "kept": plan.keep.len()})),
        );
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for name in &plan.keep {
        println!("keep   {name}");
    }
    for name in &plan.delete {
        println!("{verb} {name}");
    }
    println!("{} kept, {} {verb}", plan.keep.len(), plan.delete.len());
    Ok(())
}

pub fn run_restore(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    let backups_dir = config.backups_dir();
    let path: PathBuf = backup::resolve(&backups_dir, &args.archive)?;
    let pb = bytes_progress();
    let report = reporter(&pb);
    let r = restore::restore(&data_dir, &backups_dir, &path, args.dry_run, Some(&report));
    pb.finish_and_clear();
    let r = r.map_err(|e| match e {
        BackupError::DataDir(DataDirError::Locked { dir, pid }) => anyhow::anyhow!(
            "refusing to restore: a server (pid {pid}) is running on {}; stop it first (systemctl stop appliance)",
            dir.display()
        ),
        e => e.into(),
    })?;
    let m = &r.manifest;
    println!(
        "archive {} verified: created {}, schema v{}",
        r.archive.display(),
        m.created_at,
        m.schema_version
    );
    for (table, n) in &m.row_counts {
        let now = r
            .current_row_counts
            .as_ref()
            .and_then(|c| c.get(table))
            .map_or_else(|| "-".to_string(), ToString::to_string);
        println!("  {table:<24} now {now:>10}  restored {n:>10}");
    }
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    // Recorded in the restored database, whose audit log now continues from the archive.
    audit_cli(
        config,
        &Actor::cli()
            .event("backup.restore", Outcome::Success)
            .target(
                r.archive
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            )
            .details(serde_json::json!({
                "archive_created_at": m.created_at,
                "previous_data_dir": r.moved_aside.as_ref().map(|p| p.display().to_string()),
            })),
    );
    if let Some(aside) = &r.moved_aside {
        println!("the previous data directory is kept in {}", aside.display());
    }
    println!("restored into {}", data_dir.root().display());
    if r.pending_migrations > 0 {
        println!(
            "the next start applies {} pending migration(s) to the restored database",
            r.pending_migrations
        );
    }
    println!("start the server (systemctl start appliance); it brings the search index up to date");
    Ok(())
}
