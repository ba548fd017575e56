//! `appliance`: the whole back end of a small knowledge and mentoring service in one
//! binary. This crate root is only the module map; `main.rs` calls [`cli::main`].
#![forbid(unsafe_code)]

/// Everything `serve` owns: start-up sequence, graceful shutdown.
pub mod app;
/// Articles: types, validation with field-level errors, slugs.
pub mod articles;
/// Identity: roles, passwords, secrets, and the user operations shared by CLI and API.
pub mod auth;
/// Backups: snapshot archives, verification, retention, restore, the scheduler.
pub mod backup;
/// Article writes: one sequence for the API, bulk ingest and the CLI import.
pub mod catalog;
/// The command line (clap derive) and the code behind each subcommand.
pub mod cli;
/// Time as stored: UTC RFC 3339 with milliseconds.
pub mod clock;
/// Layered configuration: defaults < file < `APPLIANCE__…` env < flags; validation.
pub mod config;
/// The data directory: every path in one place, and the exclusive lock.
pub mod data_dir;
/// SQLite: connections, pragmas, the write helper, typed errors, migrations.
pub mod db;
/// Domain values shared across layers (a user's role).
pub mod domain;
/// Durable file helpers: fsync, rename into place, directory fsync.
pub mod fsutil;
/// The HTTP surface: router, layers, the JSON error shape, handlers.
pub mod http;
/// Markdown rendering for the editor's preview.
pub mod markdown;
/// Operational duties: health checks (and later watchdog, doctor, cleanup).
pub mod ops;
/// Cron schedules and the one loop that runs a job on them.
pub mod schedule;
/// Full-text search: the tantivy index, the outbox indexer, the query language.
pub mod search;
/// The stop signal of background tasks and the process signals that raise it.
pub mod shutdown;
/// The composition root: `AppState`, what a running server shares.
pub mod state;
/// Logging (tracing) and error reporting (Sentry).
pub mod telemetry;

/// Field errors and the JSON field readers every input validation uses.
pub mod validate;

/// The version compiled into this binary (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
