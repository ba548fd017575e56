//! Import articles from JSON lines, line by line, for the CLI (`appliance articles
//! import`) and the UI's upload (`POST /api/articles/import`) alike: each line is one
//! article object; read-only fields of an export are ignored; articles with an
//! `external_id` that exists are updated, so re-running an import never duplicates.
//! Lines are written in transactions of `batch`; a bad line (not JSON, invalid, a slug
//! another article has) is reported by its number and, with [`OnError::Skip`], left out
//! while its neighbours are written.

use std::io::BufRead;

use serde_json::Value;

use super::{BatchError, Catalog, ItemError};
use crate::articles::NewArticle;
use crate::config::ArticlesConfig;
use crate::db::DbError;
use crate::db::articles::Upserted;

/// Fields an export carries that an import does not take.
const READ_ONLY: [&str; 5] = [
    "id",
    "created_at",
    "updated_at",
    "published_at",
    "deleted_at",
];

/// What to do with a line that cannot be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Report it and go on.
    Skip,
    /// Stop there (what was imported before it stays).
    Abort,
}

/// One line that was not imported, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// The line of a file, or the row of a query's result (from 1).
    pub line: usize,
    pub message: String,
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub created: u64,
    pub updated: u64,
    /// Articles that were already as given (nothing written).
    pub unchanged: u64,
    /// Lines not imported (all of them, also when `problems` stops listing).
    pub bad: u64,
    /// The line it stopped at with [`OnError::Abort`].
    pub aborted_at: Option<usize>,
    /// The first [`MAX_LISTED`] bad lines.
    pub problems: Vec<Problem>,
}

/// A report lists at most this many bad lines (it counts them all).
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The callers' hooks: bytes read so far, and each bad line as it is found.
pub trait Progress {
    fn read(&mut self, _bytes: u64) {}
    fn problem(&mut self, _p: &Problem) {}
}

impl Progress for () {}

/// Import every line of `reader`.
pub async fn import(
    catalog: &Catalog<'_>,
    reader: impl BufRead,
    config: &ArticlesConfig,
    on_error: OnError,
    batch: usize,
    progress: &mut impl Progress,
) -> Result<Report, ImportError> {
    let mut report = Report::default();
    let mut pending: Vec<(usize, NewArticle)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|source| ImportError::Read {
            line: line_no,
            source,
        })?;
        progress.read(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, config) {
            Ok(a) => pending.push((line_no, a)),
            Err(message) => {
                report.note(
                    Problem {
                        line: line_no,
                        message,
                    },
                    progress,
                );
                if on_error == OnError::Abort {
                    // The lines before it are imported, as the report says.
                    if write(catalog, &mut pending, on_error, &mut report, progress).await? {
                        report.aborted_at = Some(line_no);
                    }
                    return Ok(report);
                }
            }
        }
        if pending.len() >= batch.max(1)
            && !write(catalog, &mut pending, on_error, &mut report, progress).await?
        {
            return Ok(report);
        }
    }
    write(catalog, &mut pending, on_error, &mut report, progress).await?;
    Ok(report)
}

/// One line as an article, or why not (in words naming the fields).
fn parse_line(line: &str, config: &ArticlesConfig) -> Result<NewArticle, String> {
    let mut v = serde_json::from_str::<Value>(line).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(o) = v.as_object_mut() {
        for k in READ_ONLY {
            o.remove(k);
        }
    }
    super::parse_new(&v, config, "").map_err(|errs| {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

impl Report {
    pub(super) fn note(&mut self, p: Problem, progress: &mut impl Progress) {
        self.bad += 1;
        progress.problem(&p);
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        }
    }
}

/// Write the pending lines in one transaction. A line that conflicts (slug taken) is
/// reported and the rest written again without it (with `Abort`: nothing more, and
/// false). Empties `pending`.
pub(super) async fn write(
    catalog: &Catalog<'_>,
    pending: &mut Vec<(usize, NewArticle)>,
    on_error: OnError,
    report: &mut Report,
    progress: &mut impl Progress,
) -> Result<bool, ImportError> {
    let mut items = std::mem::take(pending);
    while !items.is_empty() {
        match catalog.upsert_all(items.clone()).await {
            Ok(done) => {
                for (_, _, how) in done {
                    match how {
                        Upserted::Created => report.created += 1,
                        Upserted::Updated => report.updated += 1,
                        Upserted::Unchanged => report.unchanged += 1,
                    }
                }
                return Ok(true);
            }
            Err(BatchError::Db(e)) => return Err(e.into()),
            Err(BatchError::Item(ItemError { key: line, error })) => {
                report.note(
                    Problem {
                        line,
                        message: error.to_string(),
                    },
                    progress,
                );
                if on_error == OnError::Abort {
                    report.aborted_at = Some(line);
                    return Ok(false);
                }
                items.retain(|(l, _)| *l != line);
            }
        }
    }
    Ok(true)
}
