//! The request extractors of every handler, with answers that name the field at fault
//! and never repeat what was sent: [`Json`], like `axum::Json` plus a nesting depth
//! limit (`security.json_max_depth`) checked on the raw bytes before parsing, so a deeply
//! nested document is a 400 naming the limit, never deep recursion; and [`Query`], like
//! `axum::extract::Query`. Malformed JSON is a 400; a well-formed body or query string
//! with a wrong type, an unknown or a missing field is a 422 whose `fields` name the
//! field and what it must be (`crate::validate::from_serde`).

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
        if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
            return Ok(Json(v));
        }
        // What is wrong, in two steps, so that malformed JSON (400) is never confused with
        // well-formed JSON of the wrong shape (422): serde_json reports a number where an
        // enum belongs as a syntax error when it parses straight into `T`.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json's message names the line and column, never the value.
            ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))
        })?;
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| {
                ApiError::Validation(vec![crate::validate::from_serde(
                    &e.path().to_string(),
                    &e.inner().to_string(),
                )])
            })
    }
}

/// The query string, deserialized into `T`; see the module documentation.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let qs = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(qs.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::Validation(vec![crate::validate::from_serde(
                    &path,
                    &e.inner().to_string(),
                )])
            })
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
