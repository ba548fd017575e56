//! A PostgreSQL query as the source of an import: its columns are checked by name before
//! any row is read, and its rows come back one JSON object each (PostgreSQL's own
//! `row_to_json`, so every column type arrives in a form the article parser reads:
//! text, numbers, arrays, `timestamptz` as ISO 8601 in UTC), read in one read-only,
//! repeatable-read transaction.

use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::{Client, PgError};

/// The article fields a query's columns may be named after.
pub const FIELDS: [&str; 10] = [
    "external_id",
    "slug",
    "title",
    "body",
    "category",
    "tags",
    "status",
    "published_at",
    "created_at",
    "updated_at",
];

/// Columns every query must have: the key an upsert needs, and the two required fields.
pub const REQUIRED: [&str; 3] = ["external_id", "title", "body"];

/// The query without trailing semicolons and blanks (it becomes a subquery).
fn trimmed(query: &str) -> &str {
    query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// Open the read: a read-only snapshot, the query's columns checked (every unknown one
/// and every missing required one named at once). Returns the column names.
pub async fn open(client: &Client, query: &str) -> Result<Vec<String>, PgError> {
    let q = trimmed(query);
    if q.is_empty() {
        return Err(PgError::Invalid("the --query is empty".into()));
    }
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let stmt = client.prepare(q).await.map_err(|e| {
        PgError::Invalid(format!("the query is not valid: {}", super::describe(&e)))
    })?;
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut problems = Vec::new();
    let unknown: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !FIELDS.contains(c))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown column{} {} (name each column after an article field with AS: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            FIELDS.join(", ")
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let dup: Vec<&str> = columns
        .iter()
        .filter(|c| !seen.insert(c.as_str()))
        .map(String::as_str)
        .collect();
    if !dup.is_empty() {
        problems.push(format!("column named twice: {}", dup.join(", ")));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c == r))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "missing required column{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(PgError::Invalid(format!(
            "the query's columns do not map to articles: {}",
            problems.join("; ")
        )));
    }
    Ok(columns)
}

/// How many rows the query gives (in the same snapshot as [`rows`]).
pub async fn count(client: &Client, query: &str) -> Result<u64, PgError> {
    let sql = format!("SELECT count(*) FROM ({}) AS q", trimmed(query));
    let n: i64 = client.query_one(&sql, &[]).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The query's rows, each a JSON object keyed by column name.
pub async fn rows(
    client: &Client,
    query: &str,
) -> Result<impl Stream<Item = Result<Value, PgError>>, PgError> {
    let sql = format!("SELECT row_to_json(q)::text FROM ({}) AS q", trimmed(query));
    let stmt = client.prepare(&sql).await?;
    let stream = client
        .query_raw(&stmt, std::iter::empty::<&(dyn ToSql + Sync)>())
        .await?;
    Ok(stream.map(|row| {
        let text: String = row?.try_get(0)?;
        serde_json::from_str(&text).map_err(|e| PgError::Invalid(format!("row_to_json: {e}")))
    }))
}

/// End the read (the transaction was read-only: nothing to keep).
pub async fn close(client: &Client) -> Result<(), PgError> {
    client.batch_execute("ROLLBACK").await?;
    Ok(())
}
