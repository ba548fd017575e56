//! `appliance backup [create] | list | verify | prune` and `appliance restore`: thin
//! wrappers over `crate::backup` (the one job, `backup::job`) that add progress bars on
//! a terminal, keep the bookkeeping over a short connection of their own (beside a
//! running server too), and print what happened.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::ledger;
use crate::auth::audit::{self, Actor};
use crate::backup::job::{self, Job, Report};
use crate::backup::signing::{Key, Location, Origin, Trust};
use crate::backup::{self, BackupError, BackupLock, Trigger, restore};
use crate::config::Config;
use crate::data_dir::{DataDir, DataDirError};
use crate::db::audit::Outcome;

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
    /// Check an archive completely: signature, checksums, manifest, database, index.
    Verify {
        /// Archive name in the backups directory, or a path.
        archive: String,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Show the backup signing key's id and file (creating the key if there is none yet),
    /// to keep a copy of it off this machine.
    Key,
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
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// How an archive's signature is checked.
#[derive(Debug, Args, Clone)]
pub struct TrustArgs {
    /// Authenticate with this key file (64 hex digits) instead of this appliance's key:
    /// the copy kept off the machine, when restoring onto a new one.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Accept an archive whose origin cannot be proven: unsigned (made before archives
    /// were signed) or signed with a key you do not have. Its integrity is still
    /// checked, but anyone who could write to the backups could have made it. An archive
    /// signed with this key whose signature does not match is refused even so.
    #[arg(long)]
    pub trust_unsigned: bool,
}

impl TrustArgs {
    /// The trust to check with, and the key given with `--key-file`.
    fn trust(&self, config: &Config) -> anyhow::Result<(Trust, Option<Key>)> {
        let given = self.key_file.as_deref().map(Key::read).transpose()?;
        let key = match &given {
            Some(k) => Some(k.clone()),
            None => Location::of(&config.backup, &config.data_dir).load()?,
        };
        let trust = Trust {
            key,
            trust_unsigned: self.trust_unsigned,
        };
        Ok((trust, given))
    }
}

pub async fn run_backup(config: &Config, args: &BackupArgs) -> anyhow::Result<()> {
    match &args.command {
        None => create(config, args.create).await,
        Some(BackupCommand::Create(c)) => create(config, *c).await,
        Some(BackupCommand::List { json }) => list(config, *json).await,
        Some(BackupCommand::Verify { archive, trust }) => verify_cmd(config, archive, trust).await,
        Some(BackupCommand::Key) => key_cmd(config),
        Some(BackupCommand::Prune { dry_run }) => prune(config, *dry_run).await,
    }
}

/// A progress bar for the backup job's steps (bytes of each step).
fn job_report(pb: &indicatif::ProgressBar) -> Report {
    let pb = pb.clone();
    Arc::new(move |_, done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
}

async fn create(config: &Config, args: CreateArgs) -> anyhow::Result<()> {
    create_for(config, args.verify, false).await
}

/// Take a backup (and verify it when `verify`); `quiet` prints nothing to stdout (for
/// commands with JSON output, such as `cleanup --apply --json`).
pub(super) async fn create_for(config: &Config, verify: bool, quiet: bool) -> anyhow::Result<()> {
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
    let ledger = ledger(config);
    let pb = super::progress::bytes();
    let outcome = job::run(
        &Job {
            ledger: &ledger,
            data_dir: &data_dir,
            config: &config.backup,
            backups_dir: &backups_dir,
            trigger: Trigger::Manual,
            verify,
            actor: Actor::cli(),
            report: job_report(&pb),
            errors: None,
        },
        lock,
    )
    .await;
    pb.finish_and_clear();
    let outcome = outcome?;
    let created = &outcome.created;
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
    if !outcome.recorded {
        say!(
            "note: the database has no backup bookkeeping yet (run `appliance migrate run`); this run is not recorded"
        );
    }
    match &outcome.verified {
        Some(Ok(m)) if !quiet => print_verified(&created.path, m),
        Some(Err(problem)) => bail!("{problem}"),
        _ => {}
    }
    for name in &outcome.pruned {
        say!("retention removed {name}");
    }
    Ok(())
}

async fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let entries = backup::list(&dir)?;
    let verifications = ledger(config).verifications().await?;
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
            Some(v) if !v.found_faulty() => v.error.clone().unwrap_or_default(),
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

fn key_cmd(config: &Config) -> anyhow::Result<()> {
    let at = Location::of(&config.backup, &config.data_dir);
    if let Location::DataDir(_) = at {
        crate::data_dir::DataDir::new(&config.data_dir).create()?;
    }
    let key = at.load_or_create()?;
    println!(
        "backup signing key {} in {}",
        key.id(),
        key.path().display()
    );
    println!(
        "keep a copy off this machine: archives restore elsewhere only with it (restore --key-file), or with --trust-unsigned"
    );
    Ok(())
}

async fn verify_cmd(config: &Config, archive: &str, trust: &TrustArgs) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let path = backup::resolve(&dir, archive)?;
    let (trust, _) = trust.trust(config)?;
    let scratch = job::Scratch::of(&config.data_dir, &config.backup);
    crate::data_dir::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let pb = super::progress::bytes();
    let res = job::verify_and_record(
        &ledger(config),
        &dir,
        &path,
        &scratch,
        trust,
        job_report(&pb),
        None,
    )
    .await;
    pb.finish_and_clear();
    print_verified(&path, &res??);
    Ok(())
}

fn print_verified(path: &std::path::Path, v: &backup::verify::Verified) {
    let m = &v.manifest;
    let rows: Vec<String> = m
        .row_counts
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    println!(
        "OK {}: {}; created {} ({}), schema v{}, {} files, {} bytes; index {}; rows {}",
        path.display(),
        origin_words(&v.origin),
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
}

async fn prune(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let ledger = ledger(config);
    let plan = job::prune(&ledger, &config.backups_dir(), &config.backup, dry_run).await?;
    if !dry_run {
        audit::write(
            &ledger,
            Actor::cli()
                .event("backup.prune", Outcome::Success)
                .details(serde_json::json!({"deleted": plan.delete, "kept": plan.keep.len()})),
        )
        .await;
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

pub async fn run_restore(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    let backups_dir = config.backups_dir();
    let path: PathBuf = backup::resolve(&backups_dir, &args.archive)?;
    let pb = super::progress::bytes();
    let report = |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let (trust, given) = args.trust.trust(config)?;
    // A key given on a machine whose data directory has none becomes its key.
    let adopt_key = match Location::of(&config.backup, &config.data_dir) {
        Location::DataDir(_) => given,
        Location::Given(_) => None,
    };
    let opts = restore::Options {
        dry_run: args.dry_run,
        trust,
        margin: config.backup.min_free_margin_bytes,
        adopt_key,
        fail_at: None,
    };
    let r = restore::restore(&data_dir, &backups_dir, &path, &opts, Some(&report));
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
        "archive {} verified: created {}, schema v{}, {}",
        r.archive.display(),
        m.created_at,
        m.schema_version,
        origin_words(&r.origin)
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
    audit::write(
        &ledger(config),
        Actor::cli()
            .event("backup.restore", Outcome::Success)
            .target(
                r.archive
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            )
            .details(serde_json::json!({
                "archive_created_at": m.created_at,
                "origin": r.origin,
                "previous_data_dir": r.moved_aside.as_ref().map(|p| p.display().to_string()),
            })),
    )
    .await;
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

/// What the signature said, for a person.
fn origin_words(o: &Origin) -> String {
    match o {
        Origin::Signed { key_id } => format!("signed with key {key_id}"),
        Origin::Unsigned => {
            "NOT SIGNED (accepted because of --trust-unsigned: its origin is unproven)".into()
        }
        Origin::OtherKey { key_id } => format!(
            "signed with key {key_id}, which this appliance does not have (accepted because of --trust-unsigned: its origin is unproven)"
        ),
    }
}
