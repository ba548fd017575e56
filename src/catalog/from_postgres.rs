//! Import articles from a PostgreSQL query (`appliance articles import --from-postgres
//! URL --query "SELECT …"`): the day-one move from the Postgres a team has into
//! appliance. Columns map to article fields by name (`db::pg::source` checks them before
//! any row is read); rows are upserted by `external_id` in batches exactly as the
//! JSON-lines import writes lines (so a rerun creates nothing and, when nothing changed
//! at the source, writes nothing); times come along as the source recorded them.
//!
//! Column rules: `tags` is a text array, a JSON array or a comma-separated list;
//! `external_id` may be a number; `status` missing (or null) means published when
//! `published_at` is set, else draft; times are `timestamptz` (or ISO 8601 text; a time
//! without an offset is taken as UTC), kept to the millisecond.

use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::import::{OnError, Problem, Progress, Report};
use super::{Catalog, parse_new};
use crate::articles::{NewArticle, Stamps};
use crate::config::ArticlesConfig;
use crate::db::Db;
use crate::db::articles::{self as store, Upserted};
use crate::db::pg::{self, Client, PgError, source};

/// What to read and how to write it.
pub struct Options {
    pub on_error: OnError,
    pub batch: usize,
    /// Read and check everything, count what would change, write nothing.
    pub dry_run: bool,
}

/// Rows read so far and bad rows as found (the CLI's progress bar).
pub trait RowProgress: Progress {
    fn total(&mut self, _rows: u64) {}
    fn row(&mut self) {}
}

impl RowProgress for () {}

/// Import every row of `query`. `db` answers the dry run's questions; `catalog` writes.
pub async fn import(
    client: &Client,
    query: &str,
    catalog: &Catalog<'_>,
    db: &Db,
    config: &ArticlesConfig,
    options: &Options,
    progress: &mut impl RowProgress,
) -> Result<Report, PgError> {
    let columns = source::open(client, query).await?;
    let has_status = columns.iter().any(|c| c == "status");
    progress.total(source::count(client, query).await?);
    let mut rows = Box::pin(source::rows(client, query).await?);
    let mut report = Report::default();
    let mut pending: Vec<(usize, NewArticle)> = Vec::new();
    let mut n = 0usize;
    while let Some(row) = rows.next().await {
        n += 1;
        progress.row();
        let row = row?;
        match article(row, has_status, config) {
            Ok(a) => pending.push((n, a)),
            Err(message) => {
                report.note(Problem { line: n, message }, progress);
                if options.on_error == OnError::Abort {
                    if flush(catalog, db, &mut pending, options, &mut report, progress).await? {
                        report.aborted_at = Some(n);
                    }
                    drop(rows);
                    source::close(client).await?;
                    return Ok(report);
                }
            }
        }
        if pending.len() >= options.batch.max(1)
            && !flush(catalog, db, &mut pending, options, &mut report, progress).await?
        {
            drop(rows);
            source::close(client).await?;
            return Ok(report);
        }
    }
    drop(rows);
    flush(catalog, db, &mut pending, options, &mut report, progress).await?;
    source::close(client).await?;
    Ok(report)
}

/// Write the pending rows (or, in a dry run, count what writing them would do).
async fn flush(
    catalog: &Catalog<'_>,
    db: &Db,
    pending: &mut Vec<(usize, NewArticle)>,
    options: &Options,
    report: &mut Report,
    progress: &mut impl Progress,
) -> Result<bool, PgError> {
    if !options.dry_run {
        return super::import::write(catalog, pending, options.on_error, report, progress)
            .await
            .map_err(|e| PgError::Invalid(e.to_string()));
    }
    let items = std::mem::take(pending);
    let plans = db
        .read(move |c| {
            items
                .iter()
                .map(|(_, a)| store::plan(c, a))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    for p in plans {
        match p {
            Upserted::Created => report.created += 1,
            Upserted::Updated => report.updated += 1,
            Upserted::Unchanged => report.unchanged += 1,
        }
    }
    Ok(true)
}

/// One row as an article, or why not (naming its key and the fields).
fn article(row: Value, has_status: bool, config: &ArticlesConfig) -> Result<NewArticle, String> {
    let Value::Object(mut o) = row else {
        return Err("not a row".into());
    };
    let key = match o.get("external_id") {
        Some(Value::String(s)) => format!("external_id `{}`", crate::validate::excerpt(s, 80)),
        Some(Value::Number(n)) => format!("external_id `{n}`"),
        _ => "no external_id".into(),
    };
    let fail = |msg: String| format!("{key}: {msg}");
    let mut errs = Vec::new();
    if let Some(Value::Number(n)) = o.get("external_id") {
        let s = n.to_string();
        o.insert("external_id".into(), Value::String(s));
    }
    if o.get("external_id").is_none_or(Value::is_null) {
        errs.push("external_id: is required (it is the key that makes a rerun update instead of duplicate)".to_string());
    }
    if let Some(Value::String(list)) = o.get("tags") {
        let tags: Vec<Value> = list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_string()))
            .collect();
        o.insert("tags".into(), Value::Array(tags));
    }
    let mut stamps = Stamps::default();
    for (field, slot) in [
        ("created_at", &mut stamps.created_at),
        ("updated_at", &mut stamps.updated_at),
        ("published_at", &mut stamps.published_at),
    ] {
        match o.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => match time(&t) {
                Some(t) => *slot = Some(t),
                None => errs.push(format!("{field}: `{t}` is not a date and time")),
            },
            Some(other) => errs.push(format!("{field}: `{other}` is not a date and time")),
        }
    }
    if !has_status || o.get("status").is_some_and(Value::is_null) {
        let published = stamps.published_at.is_some();
        o.insert(
            "status".into(),
            Value::String(if published { "published" } else { "draft" }.into()),
        );
    }
    let parsed = parse_new(&Value::Object(without_nulls(o)), config, "");
    match parsed {
        Ok(mut a) if errs.is_empty() => {
            a.stamps = stamps;
            Ok(a)
        }
        Ok(_) => Err(fail(errs.join("; "))),
        Err(fe) => {
            errs.extend(fe.iter().map(|e| format!("{}: {}", e.field, e.message)));
            Err(fail(errs.join("; ")))
        }
    }
}

/// NULL columns are absent fields (a NULL category is no category).
fn without_nulls(o: Map<String, Value>) -> Map<String, Value> {
    o.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

/// A source time as stored (UTC, milliseconds); one without an offset is UTC.
fn time(t: &str) -> Option<String> {
    if let Some(parsed) = crate::clock::parse(t) {
        return Some(crate::clock::format(parsed));
    }
    let with_zone = format!("{}Z", t.replace(' ', "T"));
    crate::clock::parse(&with_zone).map(crate::clock::format)
}

/// Connect for an import (the CLI's door): `url` parsed, the password found.
pub async fn connect(url: &str, password: &pg::Password) -> Result<(Client, String), PgError> {
    let target = pg::Target::parse(url, password)?;
    let name = target.display();
    Ok((target.connect().await?, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> ArticlesConfig {
        crate::config::Config::default().articles
    }

    #[test]
    fn rows_map_to_articles_with_their_times() {
        let a = article(
            json!({"external_id": 7, "title": "T", "body": "B", "tags": "a, b,,c",
                   "published_at": "2024-03-01T10:00:00.123456+00:00",
                   "created_at": "2024-02-01 09:00:00"}),
            false,
            &config(),
        )
        .unwrap();
        assert_eq!(a.external_id.as_deref(), Some("7"));
        assert_eq!(a.tags, ["a", "b", "c"]);
        assert_eq!(a.status, crate::articles::Status::Published);
        assert_eq!(
            a.stamps.published_at.as_deref(),
            Some("2024-03-01T10:00:00.123Z")
        );
        assert_eq!(
            a.stamps.created_at.as_deref(),
            Some("2024-02-01T09:00:00.000Z")
        );
        let draft = article(
            json!({"external_id": "x", "title": "T", "body": "B", "published_at": null}),
            false,
            &config(),
        )
        .unwrap();
        assert_eq!(draft.status, crate::articles::Status::Draft);
    }

    #[test]
    fn a_bad_row_names_its_key_and_every_field() {
        let e = article(
            json!({"external_id": "k1", "title": "", "body": "B", "created_at": "yesterday"}),
            true,
            &config(),
        )
        .unwrap_err();
        assert!(e.starts_with("external_id `k1`: "), "{e}");
        assert!(e.contains("created_at") && e.contains("title"), "{e}");
        let e = article(
            json!({"external_id": null, "title": "T", "body": "B"}),
            true,
            &config(),
        )
        .unwrap_err();
        assert!(e.contains("external_id: is required"), "{e}");
    }
}
