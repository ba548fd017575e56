//! The JSON request-body extractor of every handler: like `axum::Json`, plus a nesting
//! depth limit (`security.json_max_depth`) checked on the raw bytes before parsing, so
//! a deeply nested document is a 400 naming the limit, never deep recursion.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::state::AppState;

pub struct Json<T>(pub T);

/// Nesting depth of a JSON text (brackets outside strings); stops counting past `max`.
pub fn depth_exceeds(bytes: &[u8], max: u32) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "expected a request body with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(e.body_text())
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        let max = state.config().security.json_max_depth;
        if depth_exceeds(&bytes, max) {
            return Err(ApiError::BadRequest(format!(
                "the JSON body is nested deeper than {max} levels"
            )));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) if e.status() == axum::http::StatusCode::UNPROCESSABLE_ENTITY => {
                Err(ApiError::Unprocessable(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!super::depth_exceeds(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(super::depth_exceeds(br#"{"a": [1, {"b": [2]}]}"#, 3));
        assert!(!super::depth_exceeds(br#"{"a": "[[[[[[\"[[["}"#, 1));
        assert!(super::depth_exceeds("[".repeat(100).as_bytes(), 32));
    }
}
