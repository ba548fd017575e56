//! The one JSON error shape of the API and the mapping of every failure into it:
//! `{"error": {"code", "message", "fields"?, "request_id"?}}`. Handlers return
//! [`ApiError`]; responses that other layers produce as plain text (body limit, timeout,
//! extractor rejections, panics) are rewritten into the same shape by [`json_errors`].

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::db::DbError;
use crate::telemetry::errors::{Category, Severity};

pub use crate::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Over a rate limit; the client may retry after the given time.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    /// Validation errors with a message of the caller's choosing.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    /// A 422 that names the query parameter at fault (e.g. search syntax).
    #[error("{message}")]
    BadParameter {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Unprocessable(String),
    /// `If-Match` named a version that is not the current one; `current` is the thing as
    /// it is now (with its `ETag`), for the client to reload or overwrite.
    #[error("{message}")]
    PreconditionFailed {
        message: String,
        current: Value,
        etag: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// Logged with its cause chain; the client sees an opaque message and the request id.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe_fields(fields: &[FieldError]) -> String {
    match fields {
        [one] if one.field.is_empty() => one.message.clone(),
        [one] => format!("`{}` {}", one.field, one.message),
        many => format!(
            "{} fields are invalid: {}",
            many.len(),
            many.iter()
                .map(|f| format!("`{}`", f.field))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // Bad query parameters too: one status for every well-formed but invalid input.
            ApiError::Validation(_)
            | ApiError::Invalid { .. }
            | ApiError::BadParameter { .. }
            | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unique { target } => {
                // "articles.slug" → field "slug"
                let field = target
                    .split(", ")
                    .next()
                    .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
                ApiError::Conflict {
                    message: format!(
                        "{} already exists",
                        field.as_deref().unwrap_or("the record")
                    ),
                    field,
                }
            }
            DbError::ForeignKey { .. } => {
                ApiError::Unprocessable("a referenced record does not exist".into())
            }
            e @ (DbError::Busy { .. } | DbError::DiskFull) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::auth::ops::OpError> for ApiError {
    fn from(err: crate::auth::ops::OpError) -> Self {
        use crate::auth::ops::OpError;
        match err {
            OpError::NotFound(m) => ApiError::NotFound(m),
            OpError::Invalid(fields) => ApiError::Validation(fields),
            OpError::Conflict { field, message } => ApiError::Conflict {
                field: Some(field),
                message,
            },
            OpError::LastAdmin(m) => ApiError::Conflict {
                field: None,
                message: m,
            },
            OpError::Forbidden(m) => ApiError::Forbidden(m),
            OpError::Db(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut body = json!({"error": {"code": code_for(status), "message": self.to_string()}});
        let mut report = None;
        if let ApiError::Unavailable(m) = &self {
            report = Some(ErrorReport {
                category: Category::System,
                severity: Severity::Medium,
                message: m.clone(),
                recorded: false,
            });
        }
        match &self {
            ApiError::Validation(fields)
            | ApiError::Invalid { fields, .. }
            | ApiError::BadParameter { fields, .. } => body["error"]["fields"] = json!(fields),
            ApiError::Conflict {
                field: Some(field), ..
            } => body["error"]["fields"] = json!([{"field": field, "message": "already exists"}]),
            ApiError::PreconditionFailed { current, .. } => body["current"] = current.clone(),
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                let category = if cause.chain().any(|c| c.downcast_ref::<DbError>().is_some()) {
                    Category::Database
                } else {
                    Category::System
                };
                report = Some(ErrorReport {
                    category,
                    severity: Severity::High,
                    message: format!("{cause:#}"),
                    recorded: false,
                });
                body["error"]["message"] =
                    "internal error; quote the request id when reporting it".into();
            }
            _ => {}
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let mut res = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(r) = report {
            res.extensions_mut().insert(r);
        }
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::PreconditionFailed { etag, .. } = &self
            && let Ok(v) = HeaderValue::from_str(etag)
        {
            res.headers_mut().insert(header::ETAG, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"appliance\""),
            );
        }
        res
    }
}

/// What a 5xx answer was about, for error tracking (read by the metrics middleware,
/// which knows the route and request id).
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub category: Category,
    pub severity: Severity,
    /// Unscrubbed; the tracker scrubs it.
    pub message: String,
    /// Already recorded elsewhere (a panic, by the panic hook).
    pub recorded: bool,
}

/// A stable machine-readable code per status.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PRECONDITION_FAILED => "precondition_failed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Largest error body this layer reads back when rewriting it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: every 4xx/5xx leaves as the JSON error shape, carrying the request id.
/// JSON errors from handlers pass through (gaining `request_id`), other JSON documents
/// pass untouched; plain-text errors from
/// axum's rejections and tower-http layers are wrapped, keeping their text as message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let parsed = is_json
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten();
    let mut value = match parsed {
        Some(v) if v.get("error").is_some_and(Value::is_object) => v,
        // A JSON document of another shape (the /readyz report) is a deliberate answer.
        Some(_) => return Response::from_parts(parts, Body::from(bytes)),
        None => {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            let message = if text.is_empty() || status.is_server_error() {
                status.canonical_reason().unwrap_or("error").to_lowercase()
            } else {
                text
            };
            json!({"error": {"code": code_for(status), "message": message}})
        }
    };
    if let Some(id) = request_id {
        value["error"]["request_id"] = id.into();
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
