//! `POST /api/articles/bulk`: many articles in one request (a JSON array, or NDJSON), in
//! one transaction, all or nothing, each item validated on its own and named in errors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::ApiError;
use super::caller::Caller;
use super::json::Query;
use crate::articles::NewArticle;
use crate::catalog::{self, BatchError, Catalog, ItemError, WriteError, import};
use crate::db::articles::Upserted;
use crate::state::AppState;
use crate::validate::FieldError;

/// Parse a bulk body: a JSON array, or NDJSON (one object per line; blank lines skipped).
/// Items are numbered from 0; for NDJSON the number is the line number minus one.
fn bulk_items(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(usize, Value)>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ndjson = ct.starts_with("application/x-ndjson")
        || ct.starts_with("application/ndjson")
        || ct.starts_with("application/jsonl");
    if ndjson {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line)
                .map_err(|e| ApiError::BadRequest(format!("line {}: not JSON: {e}", i + 1)))?;
            items.push((i, v));
        }
        Ok(items)
    } else if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(a)) => Ok(a.into_iter().enumerate().collect()),
            Ok(_) => Err(ApiError::BadRequest(
                "expected a JSON array of articles".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!("body is not JSON: {e}"))),
        }
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send application/json (an array) or application/x-ndjson".into(),
        ))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // One level more than a single article: the array around them.
    let depth = state.config().security.json_max_depth.saturating_add(1);
    if super::json::depth_exceeds(&body, depth) {
        return Err(ApiError::BadRequest(format!(
            "the JSON body is nested deeper than {depth} levels"
        )));
    }
    let items = bulk_items(&headers, &body)?;
    let max = state.config().articles.bulk_max_items as usize;
    if items.is_empty() {
        return Err(ApiError::BadRequest("no articles in the request".into()));
    }
    if items.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} articles in one request; at most {max} (articles.bulk_max_items)",
            items.len()
        )));
    }
    let mut valid: Vec<(usize, NewArticle)> = Vec::with_capacity(items.len());
    let mut errs = Vec::new();
    let mut bad = 0;
    for (i, v) in &items {
        match catalog::parse_new(v, &state.config().articles, &format!("{i}.")) {
            Ok(a) => valid.push((*i, a)),
            Err(e) => {
                bad += 1;
                errs.extend(e);
            }
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::Invalid {
            message: format!(
                "{bad} of {} articles are invalid; nothing was written",
                items.len()
            ),
            fields: errs,
        });
    }
    let results = match Catalog::new(state.db(), Some(state.search()))
        .by(caller.actor())
        .upsert_all(valid)
        .await
    {
        Ok(done) => done
            .into_iter()
            .map(|(i, article, how)| {
                json!({
                    "index": i,
                    "result": match how {
                        Upserted::Created => "created",
                        Upserted::Updated => "updated",
                        Upserted::Unchanged => "unchanged",
                    },
                    "id": article.id,
                    "slug": article.slug,
                })
            })
            .collect::<Vec<_>>(),
        Err(BatchError::Item(ItemError {
            key: i,
            error: WriteError::Conflict { field, .. },
        })) => {
            return Err(ApiError::Conflict {
                field: Some(format!("{i}.{field}")),
                message: format!(
                    "article {i}: {field} is taken by another article; nothing was written"
                ),
            });
        }
        Err(
            BatchError::Item(ItemError {
                error: WriteError::Db(e),
                ..
            })
            | BatchError::Db(e),
        ) => return Err(e.into()),
        // Bulk writes never carry If-Match.
        Err(BatchError::Item(ItemError { error, .. })) => return Err(error.into()),
    };
    let count = |what: &str| results.iter().filter(|r| r["result"] == what).count();
    Ok(Json(json!({
        "created": count("created"),
        "updated": count("updated"),
        "unchanged": count("unchanged"),
        "items": results,
    })))
}

/// `POST /api/articles/import`: a JSON-lines file as the CLI's `articles import` reads
/// it (the same code), for the UI's upload. The whole file arrives before a line is
/// written; each bad line is reported by its number and, with `on_error=skip` (the
/// default), left out while the rest are imported.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the file is empty: send JSON lines, one article object per line".into(),
        ));
    }
    if std::str::from_utf8(&body).is_err() {
        return Err(ApiError::BadRequest(
            "the file is not UTF-8 text: send JSON lines, one article object per line".into(),
        ));
    }
    let on_error = match q.on_error.as_deref() {
        None | Some("skip") => import::OnError::Skip,
        Some("abort") => import::OnError::Abort,
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "on_error",
                "must be `skip` or `abort`",
            )]));
        }
    };
    let catalog = Catalog::new(state.db(), Some(state.search())).by(caller.actor());
    let report = import::import(
        &catalog,
        &body[..],
        &state.config().articles,
        on_error,
        500,
        &mut (),
    )
    .await
    .map_err(|e| match e {
        import::ImportError::Db(e) => ApiError::from(e),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    Ok(Json(json!(report)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    on_error: Option<String>,
}
