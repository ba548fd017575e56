//! `appliance restore`: an archive of the backups directory, a path, or (with
//! `--remote`) an off-site copy downloaded first, restored into the data directory.

use std::path::PathBuf;

use clap::Args;

use super::backup::{TrustArgs, origin_words};
use super::ledger;
use crate::auth::audit::{self, Actor};
use crate::backup::signing::Location;
use crate::backup::{self, BackupError, restore};
use crate::config::Config;
use crate::data_dir::{DataDir, DataDirError};
use crate::db::audit::Outcome;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Archive name in the backups directory, or a path (with --remote: the name of an
    /// off-site copy).
    pub archive: String,
    /// Only verify the archive and report what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Download the archive from backup.remote's bucket first (checksum and signature
    /// checked, then decrypted with --identity-file), into the backups directory.
    #[arg(long)]
    pub remote: bool,
    /// The age identity file that decrypts off-site copies (kept off the machine).
    #[arg(long, value_name = "PATH")]
    pub identity_file: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

pub async fn run_restore(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    let backups_dir = config.backups_dir();
    let path: PathBuf = if args.remote {
        super::remote::fetch(
            config,
            &args.archive,
            &backups_dir,
            args.identity_file.as_deref(),
            &args.trust,
        )
        .await?
    } else {
        backup::resolve(&backups_dir, &args.archive)?
    };
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
