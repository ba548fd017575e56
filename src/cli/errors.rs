//! `appliance errors list`: the error groups the server recorded (see `telemetry::errors`),
//! read-only, working beside a running server.

use clap::{Args, Subcommand};

use super::articles::open_db;
use crate::config::Config;
use crate::db::errors::{self, Filter};

#[derive(Debug, Args)]
pub struct ErrorsArgs {
    #[command(subcommand)]
    pub command: ErrorsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// Error groups, most recently seen first: count, first and last seen, category,
    /// severity, component, operation and the latest (scrubbed) message.
    List {
        #[arg(long, value_parser = ["database", "validation", "authentication", "network", "business_logic", "system"])]
        category: Option<String>,
        #[arg(long, value_parser = ["low", "medium", "high", "critical"])]
        severity: Option<String>,
        #[arg(long)]
        component: Option<String>,
        #[arg(short = 'n', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_errors(config: &Config, args: &ErrorsArgs) -> anyhow::Result<()> {
    let ErrorsCommand::List {
        category,
        severity,
        component,
        limit,
        json,
    } = &args.command;
    let (_, db) = open_db(config).await?;
    let filter = Filter {
        category: category.clone(),
        severity: severity.clone(),
        component: component.clone(),
        since: None,
        limit: *limit,
        offset: 0,
    };
    let groups = db.read(move |c| errors::list(c, &filter)).await?;
    db.close().await?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    if groups.is_empty() {
        println!("no errors recorded");
        return Ok(());
    }
    for g in groups {
        println!(
            "{} x{:<5} {:<8} {:<14} {:<10} {}  (first {}, fingerprint {})\n    {}",
            g.last_seen,
            g.count,
            g.severity,
            g.category,
            g.component,
            g.operation,
            g.first_seen,
            g.fingerprint,
            g.message
        );
    }
    Ok(())
}
