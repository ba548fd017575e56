//! `/admin/`: the admin UI, files under `web/` embedded at compile time (rust-embed; read
//! from disk in debug builds, so edits show on reload).
//!
//! - `index.html` is served for `/admin/` and for every client route (a path without a
//!   file extension), with `Cache-Control: no-cache` and an `ETag`; its `{{ASSETS}}`
//!   placeholder becomes `/admin/assets/<fingerprint>`.
//! - Files under `web/assets/` are served only under that fingerprinted prefix, with
//!   `Cache-Control: public, max-age=31536000, immutable`. The fingerprint is a hash of
//!   every asset, so any change to any asset gives every asset a new URL, and relative
//!   module imports (`./api.js`) stay inside the same version. A stale fingerprint is a
//!   404, never another version's file cached for a year.
//! - Every answer has a content type and a weak `ETag` (SHA-256) honoured with 304 (weak,
//!   because the router gzips text when the browser accepts it, under the same header).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use super::ApiError;

#[derive(RustEmbed)]
#[folder = "web/"]
#[exclude = "README.md"]
struct Assets;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const PLACEHOLDER: &str = "{{ASSETS}}";

/// Hash of every file under `assets/` (names and contents), 16 hex digits.
fn compute_fingerprint() -> String {
    let mut names: Vec<String> = Assets::iter()
        .filter(|n| n.starts_with("assets/"))
        .map(|n| n.into_owned())
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for n in names {
        if let Some(f) = Assets::get(&n) {
            h.update(n.as_bytes());
            h.update([0]);
            h.update(f.metadata.sha256_hash());
        }
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The current asset fingerprint: computed once in release builds (the files are in the
/// binary), on every call in debug builds (they are read from disk).
pub fn fingerprint() -> String {
    if cfg!(debug_assertions) {
        return compute_fingerprint();
    }
    static FP: OnceLock<String> = OnceLock::new();
    FP.get_or_init(compute_fingerprint).clone()
}

/// `GET /admin`: the UI lives under `/admin/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/admin/")
}

/// `GET /admin/`: the UI's entry page.
pub async fn index(headers: HeaderMap) -> Response {
    entry_page(&headers)
}

/// `GET /admin/{*path}`: a fingerprinted asset, or the entry page for a client route.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if let Some(rest) = path.strip_prefix("assets/") {
        let missing = || ApiError::NotFound(format!("no file /admin/{path}")).into_response();
        let Some((fp, file)) = rest.split_once('/') else {
            return missing();
        };
        if fp != fingerprint() {
            return missing();
        }
        let name = format!("assets/{file}");
        return match Assets::get(&name) {
            Some(f) => respond(
                f.data.into_owned(),
                f.metadata.sha256_hash(),
                f.metadata.mimetype(),
                IMMUTABLE,
                &headers,
            ),
            None => missing(),
        };
    }
    // A name with a dot looks like a file, except an archive's name on the restore page.
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') && !path.starts_with("backups/restore/") {
        return ApiError::NotFound(format!("no file /admin/{path}")).into_response();
    }
    entry_page(&headers)
}

fn entry_page(headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get("index.html") else {
        return ApiError::NotFound("no file /admin/index.html".into()).into_response();
    };
    let html = String::from_utf8_lossy(&file.data)
        .replace(PLACEHOLDER, &format!("/admin/assets/{}", fingerprint()))
        .into_bytes();
    let hash: [u8; 32] = Sha256::digest(&html).into();
    respond(html, hash, "text/html; charset=utf-8", "no-cache", headers)
}

fn respond(
    body: Vec<u8>,
    hash: [u8; 32],
    mime: &str,
    cache: &'static str,
    headers: &HeaderMap,
) -> Response {
    // Weak: the same validator for the identity and the gzip-encoded representation
    // (the compression layer keeps the header), which are equivalent, not byte-equal.
    let etag = format!("W/\"{}\"", hex::encode(&hash[..16]));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                t.trim().trim_start_matches("W/") == etag.trim_start_matches("W/")
                    || t.trim() == "*"
            })
        });
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static(cache);
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    let mime =
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}
