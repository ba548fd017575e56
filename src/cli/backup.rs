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
use crate::backup::{self, BackupError, BackupLock, Trigger};
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
    /// List archives: name, time, size, trigger, verified (with --remote: the off-site
    /// copies in backup.remote's bucket).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// List the bucket of backup.remote instead of the backups directory.
        #[arg(long)]
        remote: bool,
    },
    /// Check an archive completely: signature, checksums, manifest, database, index.
    /// `s3://NAME` downloads the off-site copy to a temporary file first (its checksum
    /// and signature checked before it is decrypted).
    Verify {
        /// Archive name in the backups directory, a path, or s3://NAME.
        archive: String,
        #[command(flatten)]
        trust: TrustArgs,
        /// The age identity file that decrypts off-site copies (kept off the machine).
        #[arg(long, value_name = "PATH")]
        identity_file: Option<PathBuf>,
    },
    /// Copy an archive off the machine now (default: the newest), to backup.remote.
    Push {
        /// Archive name in the backups directory, or a path.
        archive: Option<String>,
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
    pub(super) fn trust(&self, config: &Config) -> anyhow::Result<(Trust, Option<Key>)> {
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
        Some(BackupCommand::List {
            json,
            remote: false,
        }) => list(config, *json).await,
        Some(BackupCommand::List { json, remote: true }) => {
            super::remote::list(config, *json).await
        }
        Some(BackupCommand::Verify {
            archive,
            trust,
            identity_file,
        }) => match archive.strip_prefix("s3://") {
            Some(name) => {
                super::remote::verify(config, name, trust, identity_file.as_deref()).await
            }
            None => verify_cmd(config, archive, trust).await,
        },
        Some(BackupCommand::Push { archive }) => {
            super::remote::push(config, archive.as_deref()).await
        }
        Some(BackupCommand::Key) => key_cmd(config),
        Some(BackupCommand::Prune { dry_run }) => prune(config, *dry_run).await,
    }
}

/// A progress bar for the backup job's steps (bytes of each step).
pub(super) fn job_report(pb: &indicatif::ProgressBar) -> Report {
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
    // An archive leaves the machine only verified.
    let verify = verify || config.backup.remote.enabled();
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
    if config.backup.remote.enabled() {
        super::remote::push_path(config, &created.path, quiet).await?;
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

pub(super) fn print_verified(path: &std::path::Path, v: &backup::verify::Verified) {
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

/// What the signature said, for a person.
pub(super) fn origin_words(o: &Origin) -> String {
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
