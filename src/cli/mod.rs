//! The command line: one clap-derive tree of subcommands and the code behind each
//! (serve, migrate and config here; articles and index in `articles.rs`).
//! Every failure ends as one line on stderr (`error: …`) and exit code 1; usage errors
//! are clap's (exit code 2). A bare command group prints its help.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Overrides, ServerOverrides, Sources};
use crate::data_dir::DataDir;
use crate::db::{self, migrations};
use crate::shutdown::shutdown_signal;
use crate::telemetry;

mod articles;
mod audit;
mod backup;
mod cleanup;
mod errors;
mod migrate;
mod postgres;
mod progress;
mod remote;
mod restore;
mod users;
pub use articles::{ArticlesArgs, IndexArgs};
pub use backup::BackupArgs;
pub use restore::RestoreArgs;

#[derive(Debug, Parser)]
#[command(
    name = "appliance",
    version,
    about = "The whole back end of a small knowledge and mentoring service in one binary",
    propagate_version = true
)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/appliance/appliance.toml when it exists.
    #[arg(long, global = true, env = "APPLIANCE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory; wins over `data_dir` in the file and APPLIANCE__DATA_DIR.
    #[arg(long, global = true, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, health endpoints and background tasks.
    Serve(ServeArgs),
    /// Inspect, validate and apply schema migrations.
    #[command(arg_required_else_help = true)]
    Migrate(migrate::MigrateArgs),
    /// Show or check the effective configuration.
    #[command(arg_required_else_help = true)]
    Config(ConfigArgs),
    /// Import and export articles (JSON lines; import from a PostgreSQL query too).
    #[command(arg_required_else_help = true)]
    Articles(ArticlesArgs),
    /// Copy every table into a PostgreSQL schema, verified by counts and checksums.
    #[command(arg_required_else_help = true)]
    Export(postgres::ExportArgs),
    /// Verify or rebuild the full-text search index.
    #[command(arg_required_else_help = true)]
    Index(IndexArgs),
    /// Take a backup (bare), or list, verify and prune archives.
    Backup(BackupArgs),
    /// Restore an archive into the data directory (the server must be stopped).
    Restore(RestoreArgs),
    /// Manage users: create (the first admin too), list, roles, disable, reset links.
    #[command(arg_required_else_help = true)]
    User(users::UserArgs),
    /// Manage API tokens for automation: create (shown once), list, revoke.
    #[command(arg_required_else_help = true)]
    Token(users::TokenArgs),
    /// Read the audit log of security-relevant events.
    #[command(arg_required_else_help = true)]
    Audit(audit::AuditArgs),
    /// Housekeeping: dry run by default; --apply removes what is past retention (after
    /// a verified backup), runs PRAGMA optimize and, with the server stopped, VACUUM.
    Cleanup(cleanup::CleanupArgs),
    /// List the unexpected errors the server recorded, grouped by fingerprint.
    #[command(arg_required_else_help = true)]
    Errors(errors::ErrorsArgs),
    /// Print the man page (roff) to stdout; the package build uses it.
    #[command(hide = true)]
    Man,
    /// Check everything read-only (database, schema, migrations, index, backups, disk,
    /// permissions, config); exit 0 ok, 1 warnings, 2 failures.
    Doctor {
        /// Print JSON instead of one line per check.
        #[arg(long)]
        json: bool,
        /// Also check what needs the network: the off-site bucket (backup.remote) with a
        /// small write, list and delete under its prefix.
        #[arg(long)]
        online: bool,
    },
}

/// An exit status chosen by the command (doctor), with its output already printed.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Exit(pub u8);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (IP:PORT); wins over server.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets redacted.
    Print,
    /// Load and validate the configuration; exit non-zero naming the bad key.
    Check,
}

/// Parse the command line, run the command, turn any error into one line and exit 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = run_as_data_owner(&cli) {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Run as root (`sudo appliance backup`) on a data directory a service user owns: run
/// the same command again as that user, so every file it creates stays usable by the
/// service. `restore` stays root (it renames the directory in a root-owned parent) and
/// hands the restored files to the owner itself. None: carry on in this process.
fn run_as_data_owner(cli: &Cli) -> Option<ExitCode> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const MARK: &str = "APPLIANCE_AS_DATA_OWNER";
    if !crate::fsutil::running_as_root()
        || std::env::var_os(MARK).is_some()
        || matches!(cli.command, Command::Restore(_) | Command::Man)
    {
        return None;
    }
    // A config that does not load is reported by the normal path.
    let (config, _) = load_config(cli, None).ok()?;
    let meta = std::fs::metadata(&config.data_dir).ok()?;
    if meta.uid() == 0 {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .uid(meta.uid())
        .gid(meta.gid())
        .status();
    Some(match status {
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!(
                "error: cannot run as the owner (uid {}) of {}: {e}; run it as that user: sudo -u appliance appliance …",
                meta.uid(),
                config.data_dir.display()
            );
            ExitCode::FAILURE
        }
    })
}

/// Commands that read or write data need the schema this binary was built for.
fn require_current(st: &migrations::MigrationStatus) -> anyhow::Result<()> {
    if !st.is_current() {
        bail!(
            "the database schema is not current (at {}, this binary needs {}); run `appliance migrate run` first",
            st.current_version(),
            st.target_version()
        );
    }
    Ok(())
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands that load the configuration their own way, or none.
    match &cli.command {
        Command::Serve(args) => return serve(&cli, args).await,
        Command::Man => return man(),
        Command::Config(args) => return config_command(&cli, args),
        _ => {}
    }
    let (config, _) = load_config(&cli, None)?;
    telemetry::init_tracing(&config.log, Some("warn"))?;
    match &cli.command {
        Command::Migrate(args) => migrate::run_migrate(&config, args).await,
        Command::Articles(args) => articles::run_articles(&config, args).await,
        Command::Index(args) => articles::run_index(&config, args).await,
        Command::Backup(args) => backup::run_backup(&config, args).await,
        Command::Restore(args) => restore::run_restore(&config, args).await,
        Command::User(args) => users::run_user(&config, args).await,
        Command::Token(args) => users::run_token(&config, args).await,
        Command::Audit(args) => audit::run_audit(&config, args).await,
        Command::Export(args) => postgres::run_export(&config, args).await,
        Command::Cleanup(args) => cleanup::run_cleanup(&config, args).await,
        Command::Errors(args) => errors::run_errors(&config, args).await,
        Command::Doctor { json, online } => doctor(config, *json, *online).await,
        Command::Serve(_) | Command::Man | Command::Config(_) => Ok(()),
    }
}

fn man() -> anyhow::Result<()> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(())
}

fn config_command(cli: &Cli, args: &ConfigArgs) -> anyhow::Result<()> {
    let (config, sources) = load_config(cli, None)?;
    match args.command {
        ConfigCommand::Print => {
            println!("# effective configuration ({sources}); secrets redacted");
            print!("{}", config.to_redacted_toml());
        }
        ConfigCommand::Check => println!("configuration OK ({sources})"),
    }
    Ok(())
}

async fn doctor(config: Config, json: bool, online: bool) -> anyhow::Result<()> {
    use crate::ops::doctor::{self, Level};
    let remote = config.backup.remote.clone();
    let mut d = tokio::task::spawn_blocking(move || doctor::diagnose(&config)).await?;
    if online {
        doctor::online(&remote, &mut d).await;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        for f in &d.findings {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<13} {}", f.check, f.detail);
        }
    }
    match d.exit_code() {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}

/// Bookkeeping of a command (audit entries, backup runs): its own short connection,
/// beside a server or not.
fn ledger(config: &Config) -> db::ledger::Ledger {
    db::ledger::Ledger::direct(
        DataDir::new(&config.data_dir).db_path(),
        config.database.busy_timeout_ms,
    )
}

fn load_config(cli: &Cli, listen: Option<&str>) -> anyhow::Result<(Config, Sources)> {
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        server: listen.map(|l| ServerOverrides {
            listen: Some(l.to_string()),
        }),
    };
    Ok(Config::load(cli.config.as_deref(), &overrides)?)
}

async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let (config, sources) = load_config(cli, args.listen.as_deref())?;
    telemetry::init_tracing(&config.log, None)?;
    let _sentry = telemetry::init_sentry(&config.sentry);
    tracing::info!(
        version = crate::VERSION,
        sources = %sources,
        data_dir = %config.data_dir.display(),
        "starting appliance"
    );
    // From here on SIGTERM and Ctrl-C stop the server cleanly (after it has started).
    let stop = shutdown_signal();
    // A restore asked for in the admin UI is carried out now, before anything opens.
    let restored = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || crate::ops::restore::run_pending(&config)).await?
    };
    let app = App::build(config).await?;
    if let Some(o) = &restored {
        crate::ops::restore::audit_outcome(app.state(), o).await;
    }
    let report = app.migrate_report();
    if !report.applied.is_empty() {
        tracing::info!(
            from = report.from_version,
            to = report.to_version,
            copy = ?report.copy,
            "migrations applied"
        );
    }
    let restart = app.state().clone();
    // Port 0 picked one: the next start keeps it, so clients find the server again.
    let keep_port = (restart.config().server.listen.port() == 0).then(|| app.local_addr());
    app.run_until_stopped(stop).await?;
    if restart.restart().was_asked() {
        drop(restart);
        return Err(restart_in_place(keep_port));
    }
    Ok(())
}

/// Start again in this process (same pid, arguments, environment and listener
/// address): after a stop asked for by a restore from the admin UI, which the new start
/// carries out. Returns only if it cannot, with the error (`serve` then exits non-zero,
/// and systemd starts it).
fn restart_in_place(keep: Option<std::net::SocketAddr>) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return anyhow::anyhow!("cannot find this program to start again: {e}"),
    };
    tracing::info!("starting again to carry out the restore");
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1));
    if let Some(addr) = keep {
        cmd.env(
            format!("{}SERVER__LISTEN", crate::config::ENV_PREFIX),
            addr.to_string(),
        );
    }
    let err = cmd.exec();
    anyhow::anyhow!("cannot start {} again: {err}", exe.display())
}

/// Open the database for inspection, or `None` when it does not exist yet.
#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
