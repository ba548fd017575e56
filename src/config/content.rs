//! `[articles]` (input limits) and `[search]` (the index and its queries).

use serde::{Deserialize, Serialize};

use super::{ConfigError, in_ranges};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArticlesConfig {
    /// Largest article body, in bytes (UTF-8).
    pub body_max_bytes: u64,
    /// Most articles in one `POST /api/articles/bulk` request.
    pub bulk_max_items: u32,
    /// Largest body of a bulk request, in bytes (the general limit does not apply there).
    pub bulk_body_limit_bytes: u64,
    /// Largest page of `GET /api/articles`.
    pub list_max_limit: u32,
}

impl Default for ArticlesConfig {
    fn default() -> Self {
        ArticlesConfig {
            body_max_bytes: 1024 * 1024,
            bulk_max_items: 1000,
            bulk_body_limit_bytes: 64 * 1024 * 1024,
            list_max_limit: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Analyzer {
    /// Lowercasing and English stemming ("running" finds "run").
    English,
    /// Lowercasing only.
    Simple,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Text analysis of title and body; changing it rebuilds the index at next start.
    pub analyzer: Analyzer,
    /// The index commits at most this often; a write is searchable within about this long.
    pub commit_interval_ms: u64,
    /// Outbox rows applied per index batch.
    pub batch_size: u32,
    /// Memory for tantivy's indexing buffers, in bytes.
    pub writer_memory_bytes: u64,
    /// Bad query syntax is a 400 saying where (true), or falls back to plain words (false).
    /// A request can choose with `strict=true|false`.
    pub strict_syntax: bool,
    /// Largest `limit` of `GET /api/search`.
    pub max_limit: u32,
    /// `/readyz` reports the index degraded when the oldest unindexed write is older.
    pub max_lag_secs: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            analyzer: Analyzer::English,
            commit_interval_ms: 500,
            batch_size: 5000,
            writer_memory_bytes: 64 * 1024 * 1024,
            strict_syntax: false,
            max_limit: 100,
            max_lag_secs: 60,
        }
    }
}

impl ArticlesConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_ranges::<u64>(
            "articles",
            &[
                ("body_max_bytes", self.body_max_bytes, 1..=64 * 1024 * 1024),
                (
                    "bulk_body_limit_bytes",
                    self.bulk_body_limit_bytes,
                    1024..=4 * 1024 * 1024 * 1024,
                ),
            ],
        )?;
        in_ranges::<u32>(
            "articles",
            &[
                ("bulk_max_items", self.bulk_max_items, 1..=100_000),
                ("list_max_limit", self.list_max_limit, 1..=10_000),
            ],
        )?;
        Ok(())
    }
}

impl SearchConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // tantivy refuses less than 15 MB per indexing thread.
        in_ranges::<u64>(
            "search",
            &[
                ("commit_interval_ms", self.commit_interval_ms, 10..=60_000),
                (
                    "writer_memory_bytes",
                    self.writer_memory_bytes,
                    32 * 1024 * 1024..=4 * 1024 * 1024 * 1024,
                ),
            ],
        )?;
        in_ranges::<u32>(
            "search",
            &[
                ("batch_size", self.batch_size, 1..=1_000_000),
                ("max_limit", self.max_limit, 1..=1000),
            ],
        )?;
        if self.max_lag_secs == 0 {
            return Err(ConfigError::invalid(
                "search.max_lag_secs",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
