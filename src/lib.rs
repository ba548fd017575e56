//! `appliance`: the whole back end of a small knowledge and mentoring service in one
//! binary. This crate root is only the module map; `main.rs` calls [`cli::main`].
//!
//! # The layer map
//!
//! Every arrow points down: a file imports only its own layer and the layers below it.
//! SQL lives only in `src/db/`; a file holds one room (at most about 400 lines of
//! non-test code). `tests/layers.rs` holds the code to this map.
//!
//! | layer | rooms | what lives there |
//! |---|---|---|
//! | 0 | `config`, `data_dir`, `fsutil`, `shutdown`, `clock`, `validate`, `domain`, `articles`, `markdown`, `schedule` | values and rules that need nothing else |
//! | 1 | `telemetry` | logging, the metrics registry, the error-tracking runtime and scrubbing |
//! | 2 | `db` | all SQL: the writer and readers, migrations, one file per table group, the ledger for bookkeeping, checkpoints, inspection |
//! | 3 | `auth`, `search`, `backup`, `catalog` | credentials and the audit writer; the index and its outbox drain; the one backup job; the one article-write sequence |
//! | 4 | `ops` | the server's duties: health, watchdog, metrics scrape, alerts, doctor, the backup and cleanup schedules |
//! | 5 | `state`, `http`, `app` | the composition root (`AppState`), the HTTP surface, start-up and shutdown |
//! | 6 | `cli` | the commands |
//!
//! One exception, and only one: layer 4 may name `state::AppState`, the handle its
//! duties run on.
#![forbid(unsafe_code)]

// ---- layer 0 -------------------------------------------------------------------------
/// Articles: types, validation with field-level errors, slugs.
pub mod articles;
/// Time as stored: UTC RFC 3339 with milliseconds.
pub mod clock;
/// Layered configuration: defaults < file < `APPLIANCE__…` env < flags; each section
/// validates itself.
pub mod config;
/// The data directory: every path in one place, and the exclusive lock.
pub mod data_dir;
/// Domain values shared across layers (a user's role, the API token prefix).
pub mod domain;
/// Durable file helpers: fsync, rename into place, directory fsync, free space.
pub mod fsutil;
/// Markdown rendering for the editor's preview.
pub mod markdown;
/// Cron schedules and the one loop that runs a job on them.
pub mod schedule;
/// The stop signal of background tasks and the process signals that raise it.
pub mod shutdown;
/// Field errors and the JSON field readers every input validation uses.
pub mod validate;

// ---- layer 1 -------------------------------------------------------------------------
/// Logging (tracing), the metrics registry, error tracking (and Sentry).
pub mod telemetry;

// ---- layer 2 -------------------------------------------------------------------------
/// SQLite, and every SQL statement: connections, pragmas, the write helper, typed
/// errors, migrations, one file per table group.
pub mod db;

// ---- layer 3 -------------------------------------------------------------------------
/// Identity: roles, passwords, secrets, the audit writer, and the user operations
/// shared by CLI and API.
pub mod auth;
/// Backups: snapshot archives, verification, retention, restore, the one backup job.
pub mod backup;
/// Article writes: one sequence for the API, bulk ingest and the CLI import.
pub mod catalog;
/// Full-text search: the tantivy index, the outbox indexer, the query language.
pub mod search;

// ---- layer 4 -------------------------------------------------------------------------
/// The server's duties: health checks, watchdog, metrics, alerts, doctor, schedules.
pub mod ops;
pub mod replication;

// ---- layer 5 -------------------------------------------------------------------------
/// Everything `serve` owns: start-up sequence, graceful shutdown.
pub mod app;
/// The HTTP surface: router, layers, the JSON error shape, handlers.
pub mod http;
/// The composition root: `AppState`, what a running server shares.
pub mod state;

// ---- layer 6 -------------------------------------------------------------------------
/// The command line (clap derive) and the code behind each subcommand.
pub mod cli;

/// The version compiled into this binary (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
