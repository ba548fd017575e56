//! `appliance audit tail [--follow]`: the audit log from the command line.

use super::articles::open_db;
use crate::config::Config;
use crate::db::DbError;
use crate::db::audit;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest audit entries, oldest first; --follow keeps printing new ones.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Only this action, or a prefix ending in `.` (`auth.`).
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn print_entry(e: &audit::Entry, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
    } else {
        println!(
            "{} {:<8} {:<22} {:<28} {}{}{}",
            e.at,
            e.outcome,
            e.action,
            e.actor,
            e.target.as_deref().unwrap_or("-"),
            e.ip.as_deref()
                .map(|ip| format!(" ip={ip}"))
                .unwrap_or_default(),
            e.details
                .as_ref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

pub async fn run_audit(config: &Config, args: &AuditArgs) -> anyhow::Result<()> {
    let (_, db) = open_db(config).await?;
    let AuditCommand::Tail {
        lines,
        action,
        follow,
        json,
    } = &args.command;
    let filter = audit::Filter {
        action: action.clone(),
        limit: (*lines).clamp(1, 10_000),
        ..audit::Filter::default()
    };
    let f = filter.clone();
    let mut entries = db.read(move |c| audit::list(c, &f)).await?;
    entries.reverse();
    let mut last = entries.last().map(|e| e.id).unwrap_or(0);
    for e in &entries {
        print_entry(e, *json)?;
    }
    if *follow {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let f = audit::Filter {
                after_id: Some(last),
                limit: 1000,
                ..filter.clone()
            };
            let mut new = db.read(move |c| audit::list(c, &f)).await?;
            new.reverse();
            for e in &new {
                print_entry(e, *json)?;
                last = e.id;
            }
        }
    }
    db.close().await.map_err(|e: DbError| anyhow::anyhow!(e))?;
    Ok(())
}
