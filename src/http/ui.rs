//! `/admin/`: the admin UI, files under `web/` embedded at compile time (rust-embed; read
//! from disk in debug builds). Each file is served with its content type, an `ETag` (its
//! SHA-256) answered with 304 on a match, and `Cache-Control: no-cache` (names are not
//! fingerprinted, so browsers revalidate). Paths without an extension are client routes
//! and get `index.html`; a missing file with an extension is a 404.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use super::ApiError;

#[derive(RustEmbed)]
#[folder = "web/"]
#[exclude = "README.md"]
struct Assets;

/// `GET /admin`: the UI lives under `/admin/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/admin/")
}

/// `GET /admin/`: the UI's entry page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /admin/{*path}`: an asset, or the entry page for a client route.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if Assets::get(&path).is_some() {
        return serve(&path, &headers);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return ApiError::NotFound(format!("no file /admin/{path}")).into_response();
    }
    serve("index.html", &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound(format!("no file /admin/{path}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let cache = HeaderValue::from_static("no-cache");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    let mime = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
