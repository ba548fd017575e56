//! `GET /api/search?q=&category=&tag=&limit=&offset=&strict=&fresh=`: ranked hits over
//! published articles with HTML-safe highlighted snippets. The query language is in
//! `crate::search::query`. With `fresh=true` the search first waits for the index to
//! take in every article change committed before the request (read-your-writes).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;

use super::json::Query;

use super::{ApiError, FieldError};
use crate::search::{SearchError, SearchRequest, SearchResults};
use crate::state::AppState;

/// Deepest result page a client may ask for (offset + limit); deep paging is a scan.
const MAX_WINDOW: usize = 10_000;

/// How long a `fresh=true` search waits for the indexer beyond one commit interval.
const FRESH_SLACK: Duration = Duration::from_secs(5);

/// A true/false parameter (`1`/`0` too) into `out`, or an error naming it.
fn flag(name: &str, value: &str, out: &mut bool, errs: &mut Vec<FieldError>) {
    match value {
        "true" | "1" => *out = true,
        "false" | "0" => *out = false,
        _ => errs.push(FieldError::new(name, "must be true or false")),
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn search(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SearchResults>, ApiError> {
    let cfg = state.search().config();
    let max = cfg.max_limit as usize;
    let mut req = SearchRequest {
        q: String::new(),
        category: None,
        tag: None,
        limit: 10.min(max),
        offset: 0,
        strict: cfg.strict_syntax,
    };
    let mut errs = Vec::new();
    let mut has_q = false;
    let mut fresh = false;
    for (name, value) in &params {
        match name.as_str() {
            "q" => {
                has_q = true;
                req.q = value.clone();
            }
            "category" => req.category = Some(value.clone()),
            "tag" => req.tag = Some(value.clone()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => req.limit = n,
                _ => errs.push(FieldError::new("limit", format!("must be 1 to {max}"))),
            },
            "offset" => match value.parse::<usize>() {
                Ok(n) if n <= MAX_WINDOW => req.offset = n,
                _ => errs.push(FieldError::new(
                    "offset",
                    format!("must be 0 to {MAX_WINDOW}"),
                )),
            },
            "strict" => flag(name, value, &mut req.strict, &mut errs),
            "fresh" => flag(name, value, &mut fresh, &mut errs),
            other => errs.push(FieldError::new(
                other,
                "unknown parameter; allowed: q, category, tag, limit, offset, strict, fresh",
            )),
        }
    }
    if !has_q || req.q.trim().is_empty() {
        errs.push(FieldError::new("q", "is required: the words to search for"));
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let search = state.search();
    let caught_up = if fresh {
        let limit = Duration::from_millis(search.config().commit_interval_ms) + FRESH_SLACK;
        search
            .catch_up(limit)
            .await
            .map_err(|e| ApiError::Unavailable(format!("search is unavailable: {e}")))?
    } else {
        true
    };
    match search.search(req).await {
        Ok(mut r) => {
            if !caught_up {
                r.warnings.push(
                    "The search index has not caught up with the latest changes yet; \
                     these results may miss them."
                        .into(),
                );
            }
            Ok(Json(r))
        }
        Err(SearchError::Syntax(e)) => Err(ApiError::BadParameter {
            message: format!("invalid query: {e}"),
            fields: vec![FieldError::new("q", e.to_string())],
        }),
        Err(e) => Err(ApiError::Unavailable(format!("search is unavailable: {e}"))),
    }
}
