//! `appliance articles import|export` and `appliance index verify|rebuild`.
//!
//! Import and export work whether or not the server runs (SQLite serialises the writers;
//! the server's indexer picks imported rows up from the outbox). `index rebuild` needs the
//! server stopped (it takes the data-directory lock); with the server running, use
//! `POST /api/admin/index/rebuild`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::ProgressBar;

use crate::catalog::{Catalog, import};
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::db::articles as store;
use crate::db::{Db, migrations};
use crate::fsutil;
use crate::search;

#[derive(Debug, Args)]
pub struct ArticlesArgs {
    #[command(subcommand)]
    pub command: ArticlesCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Report the bad line and go on.
    Skip,
    /// Stop at the first bad line (what was imported before it stays).
    Abort,
}

#[derive(Debug, Subcommand)]
pub enum ArticlesCommand {
    /// Import articles from a JSON-lines file (one article object per line; `-` reads
    /// stdin), or from a PostgreSQL query (--from-postgres URL --query "SELECT …").
    /// Articles with an `external_id` that exists are updated (or left alone when
    /// nothing changed), so re-running an import never duplicates. Read-only fields of
    /// an export (id, times) are ignored in JSON lines; a query's times are kept.
    Import {
        /// The JSON-lines file (not with --from-postgres).
        #[arg(
            required_unless_present = "from_postgres",
            conflicts_with = "from_postgres"
        )]
        file: Option<PathBuf>,
        #[command(flatten)]
        postgres: super::postgres::FromPostgres,
        /// What to do with a line that is not a valid article.
        #[arg(long, value_enum, default_value_t = OnError::Skip)]
        on_error: OnError,
        /// Articles per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
    },
    /// Export every live article as JSON lines.
    Export {
        /// Write here (atomically: temp file, fsync, rename) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub command: IndexCommand,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Compare the index with the database (counts and ids); exits 1 on drift.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the database beside the old one and swap it in (server
    /// stopped; with the server running use POST /api/admin/index/rebuild).
    Rebuild,
}

/// Open the database for a command that reads or writes articles: it must exist and be
/// migrated (the server, or `appliance migrate run`, does that).
pub(super) async fn open_db(config: &Config) -> anyhow::Result<(DataDir, Db)> {
    let data_dir = DataDir::new(&config.data_dir);
    let path = data_dir.db_path();
    if !path.exists() {
        bail!(
            "no database at {}; start the server once or run `appliance migrate run`",
            path.display()
        );
    }
    let db = Db::open(&path, &config.database)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))?;
    super::require_current(&db.read(migrations::status).await?)?;
    Ok((data_dir, db))
}

pub async fn run_articles(config: &Config, args: &ArticlesArgs) -> anyhow::Result<()> {
    match &args.command {
        ArticlesCommand::Import {
            file,
            postgres,
            on_error,
            batch,
        } => match file {
            Some(file) => import(config, file, *on_error, *batch).await,
            None => {
                let abort = *on_error == OnError::Abort;
                super::postgres::import(config, postgres, abort, *batch).await
            }
        },
        ArticlesCommand::Export { output } => export(config, output.as_ref()).await,
    }
}

/// The import's progress bar, and each bad line on stderr as it is found.
struct Shown(ProgressBar);

impl import::Progress for Shown {
    fn read(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn problem(&mut self, p: &import::Problem) {
        self.0
            .suspend(|| eprintln!("line {}: {}", p.line, p.message));
    }
}

async fn import(
    config: &Config,
    file: &PathBuf,
    on_error: OnError,
    batch: u32,
) -> anyhow::Result<()> {
    let (_dir, db) = open_db(config).await?;
    let catalog = Catalog::new(&db, None).by(crate::auth::audit::Actor::cli());
    let (reader, size): (Box<dyn BufRead>, u64) = if file.as_os_str() == "-" {
        (Box::new(BufReader::new(std::io::stdin())), 0)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(BufReader::new(f)), size)
    };
    let mut shown = Shown(super::progress::items(size, "bytes"));
    let on_error = match on_error {
        OnError::Skip => import::OnError::Skip,
        OnError::Abort => import::OnError::Abort,
    };
    let report = import::import(
        &catalog,
        reader,
        &config.articles,
        on_error,
        batch as usize,
        &mut shown,
    )
    .await;
    shown.0.finish_and_clear();
    db.close().await?;
    let report = report?;
    let imported = report.created + report.updated;
    println!(
        "imported {imported} articles ({} created, {} updated), {} unchanged, {} bad lines",
        report.created, report.updated, report.unchanged, report.bad
    );
    if report.aborted_at.is_some() {
        bail!(
            "import aborted at the first bad line; {imported} articles before it were imported (re-running is safe for articles with an external_id)"
        );
    }
    if imported > 0 {
        println!("the server indexes them for search (now if it runs, else at its next start)");
    }
    Ok(())
}

async fn export(config: &Config, output: Option<&PathBuf>) -> anyhow::Result<()> {
    let (_dir, db) = open_db(config).await?;
    let target = output.cloned();
    let count = db
        .read(move |c| {
            let io = |e: std::io::Error| crate::db::DbError::Other(e.to_string());
            let (mut out, tmp): (Box<dyn Write>, Option<PathBuf>) = match &target {
                Some(path) => {
                    let tmp = fsutil::temp_path_for(path);
                    let f = std::fs::File::create(&tmp).map_err(io)?;
                    (Box::new(std::io::BufWriter::new(f)), Some(tmp))
                }
                None => (
                    Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                    None,
                ),
            };
            let tx = c.unchecked_transaction()?;
            let mut n = 0u64;
            store::for_each_live(&tx, |a| {
                serde_json::to_writer(&mut out, &a)
                    .map_err(|e| crate::db::DbError::Other(e.to_string()))?;
                out.write_all(b"\n").map_err(io)?;
                n += 1;
                Ok(())
            })?;
            out.flush().map_err(io)?;
            drop(out);
            if let (Some(tmp), Some(path)) = (tmp, &target) {
                fsutil::persist(&tmp, path).map_err(io)?;
            }
            Ok(n)
        })
        .await?;
    if let Some(path) = output {
        eprintln!("exported {count} articles to {}", path.display());
    }
    Ok(())
}

pub async fn run_index(config: &Config, args: &IndexArgs) -> anyhow::Result<()> {
    match args.command {
        IndexCommand::Verify { json } => {
            let (dir, db) = open_db(config).await?;
            let root = dir.root().to_path_buf();
            let ids = tokio::task::spawn_blocking(move || search::ids_offline(&root))
                .await?
                .context("the search index cannot be read; run `appliance index rebuild`")?;
            let v = search::verify_ids(ids, &db).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "database: {} published articles; index: {} documents; outbox: {} waiting",
                    v.database_articles, v.index_documents, v.outbox_pending
                );
                if !v.missing_from_index.is_empty() {
                    println!("missing from the index: {:?}", v.missing_from_index);
                }
                if !v.not_in_database.is_empty() {
                    println!(
                        "in the index but not published in the database: {:?}",
                        v.not_in_database
                    );
                }
            }
            if v.is_consistent() {
                println!("index consistent with the database");
                Ok(())
            } else {
                bail!(
                    "index drifted from the database: {} missing, {} extra; run `appliance index rebuild`",
                    v.missing_from_index.len(),
                    v.not_in_database.len()
                )
            }
        }
        IndexCommand::Rebuild => {
            let data_dir = DataDir::new(&config.data_dir);
            let _lock = data_dir.lock().map_err(|e| {
                anyhow::anyhow!("{e}; with the server running, use POST /api/admin/index/rebuild")
            })?;
            let (dir, db) = open_db(config).await?;
            let total = db.read(store::count_live).await?;
            let pb = super::progress::items(total, "articles");
            let p = pb.clone();
            let report: search::Progress = Arc::new(move |done, _| p.set_position(done));
            let docs =
                search::rebuild_offline(dir.root(), &config.search, &db, Some(report)).await?;
            pb.finish_and_clear();
            db.close().await?;
            crate::auth::audit::write(
                &super::ledger(config),
                crate::auth::audit::Actor::cli()
                    .event("index.rebuild", crate::db::audit::Outcome::Success)
                    .details(serde_json::json!({"documents": docs})),
            )
            .await;
            println!("index rebuilt: {docs} documents");
            Ok(())
        }
    }
}
