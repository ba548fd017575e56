//! `appliance cleanup`: a dry run by default (what would go, counted); `--apply` takes a
//! verified backup first, then removes in one transaction what is past retention,
//! optionally orphans and duplicates, runs `PRAGMA optimize`, and `VACUUM` when worth
//! it and the server is stopped. The tasks are `crate::db::cleanup`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rusqlite::Connection;

use crate::auth::audit::Actor;
use crate::backup::leftovers::{self, Kind, Leftover};
use crate::config::Config;
use crate::data_dir::{DataDir, DataDirError};
use crate::db::audit::Outcome;
use crate::db::cleanup::{self, Cutoffs, Task};

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Do it (after a verified backup). Without it nothing changes.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: also delete orphaned rows (rows whose parent is gone).
    #[arg(long)]
    pub fix_orphans: bool,
    /// With --apply: also delete duplicate rows a unique index should have prevented
    /// (the oldest of each group is kept).
    #[arg(long)]
    pub remove_duplicates: bool,
    /// Print JSON instead of one line per task.
    #[arg(long)]
    pub json: bool,
}

fn open(config: &Config) -> anyhow::Result<Connection> {
    let path = DataDir::new(&config.data_dir).db_path();
    anyhow::ensure!(
        path.is_file(),
        "no database at {}; nothing to clean up",
        path.display()
    );
    let conn = cleanup::open(
        &path,
        Duration::from_millis(config.database.busy_timeout_ms),
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    super::require_current(&crate::db::migrations::status(&conn)?)?;
    Ok(conn)
}

fn print(tasks: &[Task], json: bool, apply: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(tasks)?);
        return Ok(());
    }
    for t in tasks {
        let verb = match (t.applied, apply, t.task.as_str()) {
            (_, _, "leftovers.pre_restore") => "kept        ",
            (true, _, "optimize") => "done        ",
            (true, _, "vacuum") => "vacuumed    ",
            (true, _, _) => "removed     ",
            (false, _, "vacuum") => "vacuum?     ",
            (false, _, "optimize") => "would run   ",
            (false, true, _) if t.count > 0 => "left        ",
            (false, _, _) => "would remove",
        };
        println!("{verb} {:>8}  {:<30} {}", t.count, t.task, t.detail);
    }
    Ok(())
}

pub async fn run_cleanup(config: &Config, args: &CleanupArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    // Without a server, hold the directory so none starts half-way; with one, work
    // beside it (WAL; each write waits for the server's writer).
    let dir_lock = match data_dir.lock() {
        Ok(l) => Some(l),
        Err(DataDirError::Locked { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let conn = open(config)?;
    let cut = Cutoffs::new(&config.cleanup, &config.security);
    if !args.apply {
        let mut tasks = cleanup::retention(&conn, &config.cleanup, &cut, false)?;
        tasks.push(cleanup::deleted_articles(
            &conn,
            &config.cleanup,
            &cut,
            false,
        )?);
        tasks.extend(cleanup::orphans(&conn, false)?);
        tasks.extend(cleanup::duplicates(&conn, false, &cut.now)?);
        tasks.push(cleanup::vacuum_task(&conn, &config.cleanup)?.1);
        let found = leftovers::find(data_dir.root(), &config.backups_dir(), dir_lock.is_some());
        tasks.extend(found.iter().map(|l| leftover_task(l, false, None)));
        print(&tasks, args.json, false)?;
        if !args.json {
            println!(
                "dry run: nothing changed; `appliance cleanup --apply` does it after a backup"
            );
        }
        return Ok(());
    }
    // Leftovers first: never live data, and they may be what keeps the backup from fitting.
    let removed = leftovers::remove(data_dir.root(), &config.backups_dir(), dir_lock.is_some());
    let leftover_tasks: Vec<Task> = removed
        .iter()
        .map(|r| leftover_task(&r.leftover, r.removed, r.note.as_deref()))
        .collect();
    if !args.json {
        println!("taking a verified backup first");
    }
    drop(conn);
    super::backup::create_for(config, true, args.json)
        .await
        .context("cleanup needs a backup first and it failed; nothing was removed")?;
    let mut conn = open(config)?;
    let mut tasks = cleanup::apply(
        &mut conn,
        &config.cleanup,
        &cut,
        args.fix_orphans,
        args.remove_duplicates,
        |tasks| {
            Actor::cli()
                .event("cleanup.run", Outcome::Success)
                .details(serde_json::json!({"removed": cleanup::summary(tasks)}))
        },
    )?;
    tasks.push(cleanup::optimize(&conn)?);
    let (needed, mut vacuum) = cleanup::vacuum_task(&conn, &config.cleanup)?;
    if needed && dir_lock.is_some() {
        cleanup::vacuum(&conn)?;
        vacuum.applied = true;
    } else if needed {
        vacuum.detail = format!(
            "{}; skipped: the server is running (stop it and run cleanup --apply again)",
            vacuum.detail
        );
    }
    tasks.push(vacuum);
    tasks.extend(leftover_tasks);
    print(&tasks, args.json, true)?;
    let left: Vec<&Task> = tasks
        .iter()
        .filter(|t| {
            !t.applied
                && t.count > 0
                && (t.task.starts_with("orphans.") || t.task.starts_with("duplicates."))
        })
        .collect();
    if !left.is_empty() && !args.json {
        println!(
            "integrity findings left in place: {}; see `appliance doctor`, then --fix-orphans / --remove-duplicates",
            left.iter()
                .map(|t| t.task.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    drop(dir_lock);
    Ok(())
}

/// A leftover of interrupted work as a cleanup line: `leftovers.<kind>`, the path and
/// its size, and why it stays when it does.
fn leftover_task(l: &Leftover, removed: bool, note: Option<&str>) -> Task {
    let mut detail = format!("{} ({} bytes)", l.path.display(), l.bytes);
    if let Some(n) = note {
        detail = format!("{detail}; {n}");
    } else if l.in_use {
        detail = format!("{detail}; in use by a running process");
    } else if l.kind == Kind::PreRestore {
        detail = format!("{detail}; kept: delete it yourself once the restore is confirmed");
    }
    Task {
        task: format!("leftovers.{}", l.kind.as_str()),
        count: 1,
        detail,
        applied: removed,
    }
}
