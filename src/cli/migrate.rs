//! `appliance migrate status | validate | run [--dry-run]`: the schema's history and the
//! pending migrations, from the command line (a pre-migration copy first).

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::db::{self, Db, migrations};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// List applied migrations (version, name, applied at, checksum) and pending ones.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare the embedded migrations with the database without changing it; exits
    /// non-zero on an edited, missing or unknown-newer migration.
    Validate,
    /// Apply pending migrations (a non-empty database is copied first).
    Run {
        /// Only list what would run.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run_migrate(config: &Config, args: &MigrateArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    match args.command {
        MigrateCommand::Status { json } => migrate_status(&data_dir, json),
        MigrateCommand::Validate => migrate_validate(&data_dir),
        MigrateCommand::Run { dry_run: true } => migrate_dry_run(&data_dir),
        MigrateCommand::Run { dry_run: false } => migrate_run(config).await,
    }
}

fn inspect(data_dir: &DataDir) -> anyhow::Result<Option<rusqlite::Connection>> {
    let path = data_dir.db_path();
    if !path.exists() {
        return Ok(None);
    }
    let conn = db::open_read_only(&path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    Ok(Some(conn))
}

fn status_of(data_dir: &DataDir) -> anyhow::Result<migrations::MigrationStatus> {
    Ok(match inspect(data_dir)? {
        Some(conn) => migrations::status(&conn)?,
        None => migrations::MigrationStatus {
            embedded: migrations::embedded(),
            applied: Vec::new(),
        },
    })
}

fn migrate_status(data_dir: &DataDir, json: bool) -> anyhow::Result<()> {
    let st = status_of(data_dir)?;
    let problems = st.problems();
    if json {
        let doc = serde_json::json!({
            "database": data_dir.db_path(),
            "current_version": st.current_version(),
            "target_version": st.target_version(),
            "applied": st.applied,
            "pending": st.pending(),
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "database {}: schema version {}, this binary knows up to {}",
        data_dir.db_path().display(),
        st.current_version(),
        st.target_version()
    );
    println!(
        "{:<8} {:<28} {:<8} {:<32} CHECKSUM",
        "VERSION", "NAME", "STATE", "APPLIED AT"
    );
    for a in &st.applied {
        println!(
            "{:<8} {:<28} {:<8} {:<32} {}",
            a.version, a.name, "applied", a.applied_on, a.checksum
        );
    }
    for p in st.pending() {
        println!(
            "{:<8} {:<28} {:<8} {:<32} {}",
            p.version, p.name, "pending", "-", p.checksum
        );
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(())
}

/// The migration status, or the problems that make it unsafe as an error.
fn checked_status(data_dir: &DataDir) -> anyhow::Result<migrations::MigrationStatus> {
    let st = status_of(data_dir)?;
    let problems = st.problems();
    if !problems.is_empty() {
        bail!(migrations::MigrationError::Problems(problems));
    }
    Ok(st)
}

fn migrate_validate(data_dir: &DataDir) -> anyhow::Result<()> {
    let st = checked_status(data_dir)?;
    println!(
        "migrations valid: {} applied, {} pending",
        st.applied.len(),
        st.pending().len()
    );
    Ok(())
}

fn migrate_dry_run(data_dir: &DataDir) -> anyhow::Result<()> {
    let st = checked_status(data_dir)?;
    let pending = st.pending();
    if pending.is_empty() {
        println!(
            "nothing to apply: schema at version {}",
            st.current_version()
        );
    }
    for p in pending {
        println!("would apply V{}__{}", p.version, p.name);
    }
    Ok(())
}

async fn migrate_run(config: &Config) -> anyhow::Result<()> {
    let report = migrate_now(config).await?;
    if let Some(copy) = &report.copy {
        println!(
            "kept a copy of the database before migrating: {}",
            copy.display()
        );
    }
    if report.applied.is_empty() {
        println!(
            "nothing to apply: schema at version {}",
            report.from_version
        );
    }
    for m in &report.applied {
        println!("applied V{}__{}", m.version, m.name);
    }
    Ok(())
}

/// Create the data directory if needed and apply pending migrations (refused while a
/// server holds the data-directory lock).
pub(crate) async fn migrate_now(config: &Config) -> anyhow::Result<migrations::MigrateReport> {
    let data_dir = DataDir::new(&config.data_dir);
    data_dir.create()?;
    let _lock = data_dir.lock()?;
    let path = data_dir.db_path();
    let db = Db::open(&path, &config.database)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))?;
    let backups: PathBuf = data_dir.backups_dir();
    let report = db
        .with_writer(move |conn| migrations::migrate(conn, Path::new(&backups)))
        .await
        .with_context(|| format!("cannot migrate database {}", path.display()))?;
    db.close().await?;
    Ok(report)
}
