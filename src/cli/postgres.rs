//! PostgreSQL in and out: `articles import --from-postgres URL --query "SELECT …"` (the
//! day-one migration into appliance) and `export postgres --url URL` (the way out when
//! one VM is not enough). The password comes from the URL, `--password-file` or
//! `PGPASSWORD`, and is never printed.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use crate::catalog::from_postgres::{self, Options, RowProgress};
use crate::catalog::{Catalog, import};
use crate::config::Config;
use crate::db::pg::{self, export};

/// `articles import`'s PostgreSQL source.
#[derive(Debug, Args)]
pub struct FromPostgres {
    /// Read the articles from this PostgreSQL database instead of a file:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require|verify-full|…].
    #[arg(long, value_name = "URL", requires = "query")]
    pub from_postgres: Option<String>,
    /// The query whose rows are the articles; name its columns after article fields
    /// (external_id, title, body required; slug, category, tags, status, published_at,
    /// created_at, updated_at optional), e.g. "SELECT id AS external_id, title, content AS body FROM articles".
    #[arg(long, value_name = "SQL", requires = "from_postgres")]
    pub query: Option<String>,
    /// Read and check every row, report what would be created, updated or left as it
    /// is, and write nothing.
    #[arg(long, requires = "from_postgres")]
    pub dry_run: bool,
    /// A file holding the password (else the URL's, else PGPASSWORD).
    #[arg(long, value_name = "PATH", requires = "from_postgres")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub command: ExportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Copy every table into a schema of a PostgreSQL database, from one consistent
    /// snapshot (the server may keep running), in one transaction, then verify row
    /// counts and checksums. Sessions, the search outbox and the search index do not
    /// move. Refuses a schema that has tables unless --replace.
    Postgres {
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require|verify-full|…]
        #[arg(long, value_name = "URL")]
        url: String,
        /// The schema to create (lower-case letters, digits, _).
        #[arg(long, default_value = "appliance", value_name = "NAME")]
        schema: String,
        /// Drop the schema and everything in it first (in the same transaction).
        #[arg(long, conflicts_with = "verify_only")]
        replace: bool,
        /// Copy nothing: compare the schema with the database as it is now.
        #[arg(long)]
        verify_only: bool,
        /// A file holding the password (else the URL's, else PGPASSWORD).
        #[arg(long, value_name = "PATH")]
        password_file: Option<PathBuf>,
    },
}

fn password(file: &Option<PathBuf>) -> pg::Password {
    pg::Password {
        file: file.clone(),
        from_env: true,
    }
}

/// Rows read, and each bad row on stderr as found.
struct Shown(ProgressBar);

impl import::Progress for Shown {
    fn problem(&mut self, p: &import::Problem) {
        self.0
            .suspend(|| eprintln!("row {}: {}", p.line, p.message));
    }
}

impl RowProgress for Shown {
    fn total(&mut self, rows: u64) {
        self.0.set_length(rows);
    }
    fn row(&mut self) {
        self.0.inc(1);
    }
}

impl export::Progress for Shown {
    fn total(&mut self, rows: u64) {
        self.0.set_length(rows);
    }
    fn rows(&mut self, n: u64) {
        self.0.inc(n);
    }
}

pub async fn import(
    config: &Config,
    args: &FromPostgres,
    abort: bool,
    batch: u32,
) -> anyhow::Result<()> {
    let (Some(url), Some(query)) = (&args.from_postgres, &args.query) else {
        bail!("give --from-postgres URL and --query \"SELECT …\", or a JSON-lines file");
    };
    let (_dir, db) = super::articles::open_db(config).await?;
    let (client, target) = from_postgres::connect(url, &password(&args.password_file)).await?;
    let catalog = Catalog::new(&db, None).by(crate::auth::audit::Actor::cli());
    let options = Options {
        on_error: if abort {
            import::OnError::Abort
        } else {
            import::OnError::Skip
        },
        batch: batch as usize,
        dry_run: args.dry_run,
    };
    eprintln!(
        "{} articles from {target}",
        if args.dry_run {
            "checking (dry run, nothing is written)"
        } else {
            "importing"
        }
    );
    let mut shown = Shown(super::progress::items(0, "rows"));
    let report = from_postgres::import(
        &client,
        query,
        &catalog,
        &db,
        &config.articles,
        &options,
        &mut shown,
    )
    .await;
    shown.0.finish_and_clear();
    db.close().await?;
    let report = report?;
    if args.dry_run {
        println!(
            "dry run: would create {}, update {}, leave {} unchanged; {} bad rows; nothing was written",
            report.created, report.updated, report.unchanged, report.bad
        );
    } else {
        println!(
            "imported {} articles ({} created, {} updated), {} unchanged, {} bad rows",
            report.created + report.updated,
            report.created,
            report.updated,
            report.unchanged,
            report.bad
        );
    }
    if let Some(row) = report.aborted_at {
        bail!(
            "import aborted at row {row}, the first bad one{}",
            if args.dry_run {
                ""
            } else {
                "; the rows before it were imported (re-running is safe)"
            }
        );
    }
    if !args.dry_run && report.created + report.updated > 0 {
        println!("the server indexes them for search (now if it runs, else at its next start)");
    }
    Ok(())
}

pub async fn run_export(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let ExportCommand::Postgres {
        url,
        schema,
        replace,
        verify_only,
        password_file,
    } = &args.command;
    export::check_schema(schema)?;
    let target = pg::Target::parse(url, &password(password_file))?;
    let (_dir, db) = super::articles::open_db(config).await?;
    let mut client = target.connect().await?;
    let name = target.display();
    if *verify_only {
        let reports = export::verify(&db, &client, schema).await;
        db.close().await?;
        let reports = reports?;
        print_tables(&reports);
        println!("verified: schema {schema} at {name} matches the database, table by table");
        return Ok(());
    }
    let existing = export::existing_tables(&client, schema).await?;
    if !existing.is_empty() && !replace {
        bail!(
            "schema {schema} at {name} already has {} tables ({}); give --replace to drop and rewrite it, or another --schema",
            existing.len(),
            existing.join(", ")
        );
    }
    println!(
        "exporting {} into schema {schema} at {name}{}: {}",
        db.path().display(),
        if existing.is_empty() {
            String::new()
        } else {
            format!(" (replacing its {} tables)", existing.len())
        },
        export::table_names().join(", ")
    );
    println!("not moved: sessions, the search outbox and the search index (rebuilt from the data)");
    let comment = format!(
        "appliance export of {} at {}",
        db.path().display(),
        crate::clock::now()
    );
    // Audited before the snapshot is taken, so that the export carries its own entry
    // and a --verify-only right after it matches; a failure adds a second entry.
    let ledger = super::ledger(config);
    let event = |outcome, details| {
        crate::auth::audit::Actor::cli()
            .event("export.postgres", outcome)
            .target(format!("{name}/{schema}"))
            .details(details)
    };
    crate::auth::audit::write(
        &ledger,
        event(
            crate::db::audit::Outcome::Success,
            serde_json::json!({"replace": replace, "tables": export::table_names().len()}),
        ),
    )
    .await;
    let mut shown = Shown(super::progress::items(0, "rows"));
    let started = std::time::Instant::now();
    let reports = export::export(&db, &mut client, schema, *replace, &comment, &mut shown).await;
    shown.0.finish_and_clear();
    if let Err(e) = &reports {
        crate::auth::audit::write(
            &ledger,
            event(
                crate::db::audit::Outcome::Failure,
                serde_json::json!({"error": e.to_string()}),
            ),
        )
        .await;
    }
    db.close().await?;
    let reports = reports?;
    print_tables(&reports);
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "exported and verified {rows} rows in {} tables in {secs:.1} s ({:.0} rows/s): counts and checksums match",
        reports.len(),
        rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn print_tables(reports: &[export::TableReport]) {
    for r in reports {
        println!(
            "  {:<22} {:>9} rows  sha256 {}",
            r.table,
            r.rows,
            &r.checksum[..16]
        );
    }
}
