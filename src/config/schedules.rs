//! The scheduled duties: `[backup]` (schedule, retention, compression) and `[cleanup]`
//! (retention of housekeeping, VACUUM thresholds).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, in_ranges};
use crate::schedule::parse_cron;

/// Snapshots of the database and the index (see `backup/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where archives go; empty means `<data_dir>/backups`. May be another disk.
    pub dir: PathBuf,
    /// When `serve` takes a backup: a cron expression in UTC (5 fields, or 6 with
    /// seconds first); empty turns the scheduler off.
    pub schedule: String,
    /// Retention, applied after every successful backup: the newest N archives...
    pub keep_last: u32,
    /// ...plus the newest archive of each of the last D days that have one...
    pub keep_daily: u32,
    /// ...plus the newest archive of each of the last W ISO weeks that have one.
    pub keep_weekly: u32,
    /// `/readyz` says degraded when the last good backup is older than this (0: never).
    pub max_age_hours: u64,
    /// zstd level of archives: 1 (fast, the default) .. 19 (smallest); -1 .. -7 are
    /// zstd's `--fast` levels (faster still, larger archives).
    pub compression_level: i32,
    /// Free space kept on the backups disk on top of the expected archive size.
    pub min_free_margin_bytes: u64,
    /// The key that signs archives (64 hex digits; a relative name is looked up in
    /// `$CREDENTIALS_DIRECTORY`). Unset: the systemd credential `backup-signing-key`
    /// when given, else `<data_dir>/backup-signing.key`, created by the first backup.
    pub signing_key_file: Option<PathBuf>,
    /// Off-site copies in S3-compatible object storage (`[backup.remote]`).
    pub remote: super::remote::RemoteConfig,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: PathBuf::new(),
            // Daily at 03:17 UTC: a quiet hour, off the top of the hour when other jobs run.
            schedule: "17 3 * * *".into(),
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            max_age_hours: 26,
            // Measured on 410 MiB of articles (README, Performance): level 1 writes
            // 440 MiB/s for a 32% archive, level 3 207 MiB/s for 24%.
            compression_level: 1,
            min_free_margin_bytes: 64 * 1024 * 1024,
            signing_key_file: None,
            remote: super::remote::RemoteConfig::default(),
        }
    }
}

impl BackupConfig {
    /// The parsed schedule, or None when the scheduler is off.
    pub fn cron(&self) -> Result<Option<croner::Cron>, String> {
        parse_cron(&self.schedule)
    }
}

/// Housekeeping (`appliance cleanup`, and its safe part on a schedule in `serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// When `serve` removes expired sessions, old tokens, reset links, audit entries and
    /// error groups and runs `PRAGMA optimize`: cron in UTC; empty turns it off.
    pub schedule: String,
    /// Soft-deleted articles are purged for good (by `cleanup --apply`) after this long.
    pub deleted_retention_days: u32,
    /// API tokens expired or revoked longer ago than this are removed.
    pub token_retention_days: u32,
    /// Audit entries older than this are removed.
    pub audit_retention_days: u32,
    /// Error groups not seen for this long are removed.
    pub error_retention_days: u32,
    /// `cleanup --apply` runs VACUUM when at least this fraction of pages is free...
    pub vacuum_min_free_ratio: f64,
    /// ...and they add up to at least this many bytes.
    pub vacuum_min_free_bytes: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            // Daily, an hour after the default backup (03:17) so a backup holds what goes.
            schedule: "43 4 * * *".into(),
            deleted_retention_days: 30,
            token_retention_days: 30,
            // A year of security events: enough to answer "who did that last spring".
            audit_retention_days: 365,
            error_retention_days: 90,
            vacuum_min_free_ratio: 0.25,
            vacuum_min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

impl CleanupConfig {
    /// The parsed schedule, or None when it is off.
    pub fn cron(&self) -> Result<Option<croner::Cron>, String> {
        parse_cron(&self.schedule)
    }
}

impl BackupConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.cron() {
            return Err(ConfigError::invalid(
                "backup.schedule",
                format!("{:?}", self.schedule),
                &format!(
                    "not a cron expression ({e}); e.g. \"17 3 * * *\" for daily at 03:17 UTC, or \"\" for no schedule"
                ),
            ));
        }
        if !(-7..=19).contains(&self.compression_level) || self.compression_level == 0 {
            return Err(ConfigError::invalid(
                "backup.compression_level",
                self.compression_level,
                "must be 1 (fast) .. 19 (small), or -1 .. -7 (zstd --fast levels)",
            ));
        }
        if self.keep_last == 0 {
            return Err(ConfigError::invalid(
                "backup.keep_last",
                0,
                "must be at least 1 (the newest backup is always kept)",
            ));
        }
        self.remote.validate()
    }
}

impl CleanupConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.cron() {
            return Err(ConfigError::invalid(
                "cleanup.schedule",
                format!("\"{}\"", self.schedule),
                &format!("not a cron expression ({e})"),
            ));
        }
        in_ranges::<u32>(
            "cleanup",
            &[
                (
                    "deleted_retention_days",
                    self.deleted_retention_days,
                    1..=36_500,
                ),
                (
                    "token_retention_days",
                    self.token_retention_days,
                    1..=36_500,
                ),
                (
                    "audit_retention_days",
                    self.audit_retention_days,
                    1..=36_500,
                ),
                (
                    "error_retention_days",
                    self.error_retention_days,
                    1..=36_500,
                ),
            ],
        )?;
        in_ranges::<f64>(
            "cleanup",
            &[(
                "vacuum_min_free_ratio",
                self.vacuum_min_free_ratio,
                0.0..=1.0,
            )],
        )?;
        Ok(())
    }
}
