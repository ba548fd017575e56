//! `/api/articles`: create (upsert by `external_id`), read by id or slug, patch, soft and
//! hard delete, restore, keyset listing and bulk ingest. Validation is in
//! `crate::articles`, the write sequence in `crate::catalog` (which wakes the indexer),
//! storage in `crate::db::articles`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};

use super::json::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Caller;
use super::{ApiError, FieldError};
use crate::articles::{Article, Status};
use crate::catalog::{self, Catalog, WriteError};
use crate::db::articles::{self as store, ArticleKey, ListFilter, Upserted};
use crate::state::AppState;

fn catalog(state: &AppState) -> Catalog<'_> {
    Catalog::new(state.db(), Some(state.search()))
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict { field, message } => ApiError::Conflict {
                field: Some(field),
                message,
            },
            WriteError::Moved(current) => ApiError::PreconditionFailed {
                message: format!(
                    "the article was changed since you loaded it (last change {}); reload it, or send If-Match: {} to overwrite",
                    current.updated_at,
                    current.etag()
                ),
                etag: current.etag(),
                current: json!(current),
            },
            WriteError::Db(e) => e.into(),
        }
    }
}

fn visible(a: &Article, caller: &Caller) -> bool {
    a.deleted_at.is_none() && (a.status == Status::Published || caller.can_see_drafts())
}

fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no article `{}`",
        crate::validate::excerpt(key, 80)
    ))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    super::json::Json(body): super::json::Json<Value>,
) -> Result<Response, ApiError> {
    let new =
        catalog::parse_new(&body, &state.config().articles, "").map_err(ApiError::Validation)?;
    let (article, how) = catalog(&state).by(caller.actor()).upsert(new).await?;
    let status = match how {
        Upserted::Created => StatusCode::CREATED,
        Upserted::Updated | Upserted::Unchanged => StatusCode::OK,
    };
    let location = format!("/api/articles/{}", article.id);
    Ok((status, [(header::LOCATION, location)], Json(article)).into_response())
}

/// An article with its version as `ETag` (send it back as `If-Match` when changing it).
fn with_etag(status: StatusCode, a: Article) -> Response {
    let etag = a.etag();
    (status, [(header::ETAG, etag)], Json(a)).into_response()
}

/// `GET /api/articles/{key}`: the article, with `ETag`; `If-None-Match` with the current
/// version answers 304. `?render=html` adds `html`: the body as a reader sees it
/// (rendered and sanitised, as the preview), for the UI's reading view.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut render = false;
    for (name, value) in &params {
        match (name.as_str(), value.as_str()) {
            ("render", "html") => render = true,
            ("render", _) => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "render",
                    "must be html",
                )]));
            }
            (other, _) => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    other,
                    "unknown parameter; allowed: render",
                )]));
            }
        }
    }
    let k = ArticleKey::parse(&key);
    let article = state.db().read(move |c| store::get(c, &k)).await?;
    match article {
        Some(a) if visible(&a, &caller) => {
            let etag = a.etag();
            let unchanged = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
            if unchanged {
                return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
            }
            if render {
                let html = crate::markdown::render_markdown(&a.body);
                let mut v = json!(a);
                v["html"] = json!(html);
                return Ok((StatusCode::OK, [(header::ETAG, etag)], Json(v)).into_response());
            }
            Ok(with_etag(StatusCode::OK, a))
        }
        _ => Err(not_found(&key)),
    }
}

/// `PATCH /api/articles/{key}`: change some fields. With `If-Match` (an `ETag` from GET),
/// only while the article is still at that version: 412 with the current article and
/// its `ETag` when someone changed it since. Without it, the change applies (last write
/// wins), as before.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    super::json::Json(body): super::json::Json<Value>,
) -> Result<Response, ApiError> {
    let patch =
        catalog::parse_patch(&body, &state.config().articles).map_err(ApiError::Validation)?;
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::BadRequest("If-Match is not a valid header value".into()))
        })
        .transpose()?;
    let updated = catalog(&state)
        .by(caller.actor())
        .update_if(ArticleKey::parse(&key), patch, if_match)
        .await?;
    updated
        .map(|a| with_etag(StatusCode::OK, a))
        .ok_or_else(|| not_found(&key))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let mut purge = false;
    for (name, value) in &params {
        match (name.as_str(), value.as_str()) {
            ("purge", "true" | "1") => purge = true,
            ("purge", "false" | "0") => purge = false,
            ("purge", other) => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "purge",
                    format!(
                        "must be true or false (got `{}`)",
                        crate::validate::excerpt(other, 40)
                    ),
                )]));
            }
            (other, _) => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    other,
                    "unknown parameter; allowed: purge",
                )]));
            }
        }
    }
    // Who deleted what is audited (the trash shows it); a purge can be the second step.
    let k = ArticleKey::parse(&key);
    let before = state.db().read(move |c| store::get(c, &k)).await?;
    let done = catalog(&state)
        .delete(ArticleKey::parse(&key), purge)
        .await?;
    if !done {
        return Err(not_found(&key));
    }
    if let Some(a) = before {
        let action = if purge {
            "article.purge"
        } else {
            "article.delete"
        };
        super::access::audit(
            &state,
            caller
                .event(action, crate::db::audit::Outcome::Success)
                .target(format!("article:{}", a.id))
                .details(json!({"slug": a.slug, "title": a.title})),
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Undo a soft delete.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Article>, ApiError> {
    let restored = catalog(&state).restore(ArticleKey::parse(&key)).await?;
    let a = restored.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no deleted article `{}`",
            crate::validate::excerpt(&key, 80)
        ))
    })?;
    super::access::audit(
        &state,
        caller
            .event("article.restore", crate::db::audit::Outcome::Success)
            .target(format!("article:{}", a.id))
            .details(json!({"slug": a.slug, "title": a.title})),
    )
    .await;
    Ok(Json(a))
}

/// Listing items carry everything but the body.
/// `POST /api/articles/preview` `{"body": "..."}`: the body rendered as safe HTML (see
/// [`crate::markdown::render_markdown`]), for the editor's preview.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn preview(
    State(state): State<AppState>,
    super::json::Json(body): super::json::Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut errs = Vec::new();
    if let Some(obj) = crate::validate::object(&body, "", &mut errs) {
        crate::validate::unknown_fields(obj, &["body"], "", &mut errs);
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let Some(text) = body.get("body").and_then(Value::as_str) else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "is required: the Markdown text to render",
        )]));
    };
    let max = catalog::limits(&state.config().articles).body_max_bytes;
    if text.len() > max {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            format!("is longer than articles.body_max_bytes ({max} bytes)"),
        )]));
    }
    Ok(Json(
        json!({"html": crate::markdown::render_markdown(text)}),
    ))
}

fn summary(a: Article) -> Value {
    let mut v = json!(a);
    if let Some(o) = v.as_object_mut() {
        o.remove("body");
    }
    v
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let max = state.config().articles.list_max_limit;
    let mut f = ListFilter {
        limit: max.min(50),
        ..ListFilter::default()
    };
    let mut errs = Vec::new();
    let mut with_total = false;
    for (name, value) in &params {
        match name.as_str() {
            "category" => f.category = Some(value.clone()),
            "count" => match value.as_str() {
                "true" | "1" => with_total = true,
                "false" | "0" => with_total = false,
                _ => errs.push(FieldError::new("count", "must be true or false")),
            },
            "tag" => f.tag = Some(value.to_lowercase()),
            "status" => match Status::parse(value) {
                Some(s) => f.status = Some(s),
                None => errs.push(FieldError::new("status", "must be `draft` or `published`")),
            },
            "updated_since" => {
                f.updated_since = super::time_param("updated_since", value, &mut errs)
            }
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => f.limit = n,
                _ => errs.push(FieldError::new("limit", format!("must be 1 to {max}"))),
            },
            "cursor" => match value.parse::<i64>() {
                Ok(n) if n > 0 => f.before_id = Some(n),
                _ => errs.push(FieldError::new(
                    "cursor",
                    "must be a cursor from a previous page",
                )),
            },
            "deleted" => match value.as_str() {
                "true" | "1" => f.deleted = true,
                "false" | "0" => f.deleted = false,
                _ => errs.push(FieldError::new("deleted", "must be true or false")),
            },
            other => errs.push(FieldError::new(
                other,
                "unknown parameter; allowed: category, tag, status, updated_since, limit, cursor, deleted, count",
            )),
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    if f.deleted && !caller.can_see_drafts() {
        return Err(ApiError::Forbidden(
            "the trash (deleted=true) is for editors".into(),
        ));
    }
    if !caller.can_see_drafts() {
        if f.status == Some(Status::Draft) {
            return Err(ApiError::Forbidden(
                "drafts are visible to editors only".into(),
            ));
        }
        f.status = Some(Status::Published);
    }
    let trash = f.deleted;
    let (items, next, deleted_by, total) = state
        .db()
        .read(move |c| {
            let (items, next) = store::list(c, &f)?;
            let total = if with_total {
                Some(store::count(c, &f)?)
            } else {
                None
            };
            let by = if f.deleted {
                let ids: Vec<i64> = items.iter().map(|a| a.id).collect();
                crate::db::audit::deleted_by(c, &ids)?
            } else {
                Default::default()
            };
            Ok((items, next, by, total))
        })
        .await?;
    let keep_days = i64::from(state.config().cleanup.deleted_retention_days);
    let items: Vec<Value> = items
        .into_iter()
        .map(|a| {
            let (id, deleted_at) = (a.id, a.deleted_at.clone());
            let mut v = summary(a);
            if trash {
                // When cleanup purges it for good (cleanup.deleted_retention_days).
                v["purge_at"] = json!(
                    deleted_at
                        .as_deref()
                        .and_then(crate::clock::parse)
                        .map(|t| crate::clock::format(t + time::Duration::days(keep_days)))
                );
                v["deleted_by"] = json!(deleted_by.get(&id));
            }
            v
        })
        .collect();
    let mut page = json!({
        "items": items,
        "next_cursor": next.map(|n| n.to_string()),
    });
    if let Some(n) = total {
        page["total"] = json!(n);
    }
    Ok(Json(page))
}
