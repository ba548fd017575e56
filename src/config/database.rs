//! `[database]` (SQLite pragmas, pools, checkpoints) and `[health]` (disk thresholds and
//! check timeouts of `/readyz`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, in_ranges};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Durable at every checkpoint; a power cut may lose the last commits (never corrupts).
    Normal,
    /// Every commit is fsynced.
    Full,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `PRAGMA synchronous` of the writer.
    pub synchronous: Synchronous,
    /// Size of the read-only connection pool.
    pub readers: u32,
    /// `PRAGMA busy_timeout` of every connection, in milliseconds.
    pub busy_timeout_ms: u64,
    /// How long a write waits for the single writer connection before answering 503.
    pub write_timeout_ms: u64,
    /// `PRAGMA mmap_size` of the reader connections (bytes). Without it the bundled
    /// SQLite's shared page-cache lock keeps two readers no faster than one (DESIGN.md).
    pub mmap_size_bytes: u64,
    /// `PRAGMA cache_size` of the writer connection (bytes): its page cache for the
    /// B-tree pages that inserts and updates touch.
    pub writer_cache_bytes: u64,
    /// `PRAGMA journal_size_limit`: the WAL file is truncated to this size after a reset.
    pub journal_size_limit_bytes: u64,
    /// Interval of the background WAL checkpoint (SQLite's automatic checkpoint inside
    /// a writer's commit is switched off); 0 leaves checkpoints to Litestream when it
    /// replicates the database (README, continuous replication).
    pub checkpoint_interval_ms: u64,
    /// Apply pending migrations when `serve` starts; when false, `serve` refuses to
    /// start until `appliance migrate run` was run.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            synchronous: Synchronous::Normal,
            readers: 4,
            busy_timeout_ms: 5000,
            write_timeout_ms: 5000,
            mmap_size_bytes: 256 * 1024 * 1024,
            writer_cache_bytes: 8 * 1024 * 1024,
            journal_size_limit_bytes: 64 * 1024 * 1024,
            checkpoint_interval_ms: 1000,
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// `/readyz` reports `failing` when free space in the data dir is below this.
    pub min_free_disk_bytes: u64,
    /// `/readyz` reports `degraded` when free space is below this.
    pub warn_free_disk_bytes: u64,
    /// Each deep check gives up (and fails) after this long.
    pub check_timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            min_free_disk_bytes: 256 * 1024 * 1024,
            warn_free_disk_bytes: 1024 * 1024 * 1024,
            check_timeout_ms: 2000,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_ranges::<u32>("database", &[("readers", self.readers, 1..=64)])?;
        in_ranges::<u64>(
            "database",
            &[
                (
                    "writer_cache_bytes",
                    self.writer_cache_bytes,
                    1024 * 1024..=16 * 1024 * 1024 * 1024,
                ),
                ("busy_timeout_ms", self.busy_timeout_ms, 1..=600_000),
                ("write_timeout_ms", self.write_timeout_ms, 1..=600_000),
                (
                    "checkpoint_interval_ms",
                    self.checkpoint_interval_ms,
                    0..=600_000,
                ),
            ],
        )?;
        Ok(())
    }
}

impl HealthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_ranges::<u64>(
            "health",
            &[("check_timeout_ms", self.check_timeout_ms, 1..=600_000)],
        )?;
        if self.warn_free_disk_bytes < self.min_free_disk_bytes {
            return Err(ConfigError::invalid(
                "health.warn_free_disk_bytes",
                self.warn_free_disk_bytes,
                "must be at least health.min_free_disk_bytes",
            ));
        }
        Ok(())
    }
}
