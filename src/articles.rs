//! The article domain: types, input validation with field-level errors, and slugs.
//! Validation reads a `serde_json::Value` by hand (the readers are in `validate`) so
//! that every bad field (and every unknown one) is reported at once, by name. Storage lives in `db::articles`; HTTP in
//! `http::articles`; the index in `search`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::validate::FieldError;
use crate::validate::{object, opt, short_text, string, unknown_fields};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Published,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "draft" => Some(Status::Draft),
            "published" => Some(Status::Published),
            _ => None,
        }
    }
}

/// An article as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Article {
    pub id: i64,
    pub external_id: Option<String>,
    pub slug: String,
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub status: Status,
    pub created_at: String,
    pub updated_at: String,
    pub published_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl Article {
    /// The article's version for optimistic concurrency (`ETag` / `If-Match`): a hash of
    /// everything a client sees of it, quoted as an HTTP entity tag. Any change to any
    /// field gives another one, even two within the same millisecond.
    pub fn etag(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..20])
    }
}

/// A validated create (or upsert by `external_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewArticle {
    pub external_id: Option<String>,
    pub slug: Option<String>,
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub status: Status,
    /// Times brought from elsewhere by an import (none from the API: the write's time).
    pub stamps: Stamps,
}

/// An article's times as another system recorded them (RFC 3339 UTC with milliseconds,
/// as stored); `None` takes the time of the write, as any other create or update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stamps {
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Used only when the article is published.
    pub published_at: Option<String>,
}

/// A validated partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArticlePatch {
    pub slug: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    /// `Some(None)` clears the category.
    pub category: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub status: Option<Status>,
}

impl ArticlePatch {
    pub fn is_empty(&self) -> bool {
        *self == ArticlePatch::default()
    }
}

/// Limits that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_max_bytes: usize,
}

pub const TITLE_MAX_CHARS: usize = 300;
pub const SLUG_MAX_CHARS: usize = 100;
pub const CATEGORY_MAX_CHARS: usize = 64;
pub const TAG_MAX_CHARS: usize = 40;
pub const TAGS_MAX: usize = 20;
pub const EXTERNAL_ID_MAX_CHARS: usize = 200;
/// Slugs that name routes under `/api/articles/` and so could not be fetched by slug.
pub const RESERVED_SLUGS: [&str; 3] = ["bulk", "import", "preview"];

const CREATE_FIELDS: [&str; 7] = [
    "external_id",
    "slug",
    "title",
    "body",
    "category",
    "tags",
    "status",
];
const PATCH_FIELDS: [&str; 6] = ["slug", "title", "body", "category", "tags", "status"];

/// Validate a create request body. `prefix` names the item in bulk requests (`"3."`).
pub fn parse_new(v: &Value, limits: Limits, prefix: &str) -> Result<NewArticle, Vec<FieldError>> {
    let mut errs = Vec::new();
    let Some(obj) = object(v, prefix, &mut errs) else {
        return Err(errs);
    };
    unknown_fields(obj, &CREATE_FIELDS, prefix, &mut errs);
    let f = |name: &str| format!("{prefix}{name}");
    let title = match obj.get("title") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new(f("title"), "is required"));
            None
        }
        Some(v) => title(v, &f("title"), &mut errs),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new(f("body"), "is required"));
            None
        }
        Some(v) => body(v, &f("body"), limits, &mut errs),
    };
    let external_id = opt(obj, "external_id")
        .and_then(|v| short_text(v, &f("external_id"), EXTERNAL_ID_MAX_CHARS, &mut errs));
    let slug = opt(obj, "slug").and_then(|v| slug(v, &f("slug"), &mut errs));
    let category = opt(obj, "category")
        .and_then(|v| short_text(v, &f("category"), CATEGORY_MAX_CHARS, &mut errs));
    let tags = opt(obj, "tags")
        .map(|v| tags(v, &f("tags"), &mut errs))
        .unwrap_or_default();
    let status = opt(obj, "status")
        .and_then(|v| status(v, &f("status"), &mut errs))
        .unwrap_or(Status::Draft);
    match (title, body) {
        (Some(title), Some(body)) if errs.is_empty() => Ok(NewArticle {
            external_id,
            slug,
            title,
            body,
            category,
            tags,
            status,
            stamps: Stamps::default(),
        }),
        _ => Err(errs),
    }
}

/// Validate a PATCH body: any subset of the fields; `category: null` clears it.
pub fn parse_patch(v: &Value, limits: Limits) -> Result<ArticlePatch, Vec<FieldError>> {
    let mut errs = Vec::new();
    let Some(obj) = object(v, "", &mut errs) else {
        return Err(errs);
    };
    if obj.contains_key("external_id") {
        errs.push(FieldError::new(
            "external_id",
            "cannot be changed; create a new article instead",
        ));
    }
    let mut allowed: Vec<&str> = PATCH_FIELDS.to_vec();
    allowed.push("external_id");
    unknown_fields(obj, &allowed, "", &mut errs);
    let mut patch = ArticlePatch::default();
    let not_null = |name: &str, errs: &mut Vec<FieldError>| {
        let v = obj.get(name)?;
        if v.is_null() {
            errs.push(FieldError::new(name, "cannot be null"));
            return None;
        }
        Some(v)
    };
    patch.title = not_null("title", &mut errs).and_then(|v| title(v, "title", &mut errs));
    patch.body = not_null("body", &mut errs).and_then(|v| body(v, "body", limits, &mut errs));
    patch.slug = not_null("slug", &mut errs).and_then(|v| slug(v, "slug", &mut errs));
    patch.status = not_null("status", &mut errs).and_then(|v| status(v, "status", &mut errs));
    patch.tags = not_null("tags", &mut errs).map(|v| tags(v, "tags", &mut errs));
    patch.category = match obj.get("category") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => short_text(v, "category", CATEGORY_MAX_CHARS, &mut errs).map(Some),
    };
    if errs.is_empty() && patch.is_empty() {
        errs.push(FieldError::new(
            "",
            format!(
                "nothing to change; send one or more of: {}",
                PATCH_FIELDS.join(", ")
            ),
        ));
    }
    if errs.is_empty() {
        Ok(patch)
    } else {
        Err(errs)
    }
}

fn title(v: &Value, field: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    short_text(v, field, TITLE_MAX_CHARS, errs)
}

fn body(v: &Value, field: &str, limits: Limits, errs: &mut Vec<FieldError>) -> Option<String> {
    let s = string(v, field, errs)?;
    if s.len() > limits.body_max_bytes {
        errs.push(FieldError::new(
            field,
            format!(
                "must be at most {} bytes (got {})",
                limits.body_max_bytes,
                s.len()
            ),
        ));
        return None;
    }
    Some(s.to_string())
}

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, at most [`SLUG_MAX_CHARS`].
pub fn is_valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SLUG_MAX_CHARS
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn slug(v: &Value, field: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    let s = string(v, field, errs)?;
    if !is_valid_slug(s) {
        errs.push(FieldError::new(
            field,
            format!(
                "must be lowercase letters and digits separated by single hyphens (like `getting-started-2`), at most {SLUG_MAX_CHARS} characters"
            ),
        ));
        return None;
    }
    if RESERVED_SLUGS.contains(&s) {
        errs.push(FieldError::new(
            field,
            format!(
                "`{}` is reserved (it is a route under /api/articles/)",
                crate::validate::excerpt(s, 40)
            ),
        ));
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        errs.push(FieldError::new(
            field,
            "must contain a letter (all-digit slugs would read as ids)",
        ));
        return None;
    }
    Some(s.to_string())
}

fn status(v: &Value, field: &str, errs: &mut Vec<FieldError>) -> Option<Status> {
    let s = string(v, field, errs)?;
    match Status::parse(s) {
        Some(st) => Some(st),
        None => {
            errs.push(FieldError::new(
                field,
                format!(
                    "must be `draft` or `published` (got `{}`)",
                    crate::validate::excerpt(s, 40)
                ),
            ));
            None
        }
    }
}

/// Tags are trimmed, lowercased and de-duplicated, in the order given.
fn tags(v: &Value, field: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    let Some(items) = v.as_array() else {
        errs.push(FieldError::new(field, "must be an array of strings"));
        return Vec::new();
    };
    if items.len() > TAGS_MAX {
        errs.push(FieldError::new(
            field,
            format!("at most {TAGS_MAX} tags (got {})", items.len()),
        ));
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("{field}.{i}");
        if let Some(t) = short_text(item, &name, TAG_MAX_CHARS, errs) {
            let t = t.to_lowercase();
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
    }
    out
}

/// A slug made from a title: lowercase ASCII letters and digits joined by hyphens.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty()
        || out.bytes().all(|b| b.is_ascii_digit())
        || RESERVED_SLUGS.contains(&out.as_str())
    {
        format!("article-{out}").trim_end_matches('-').to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const L: Limits = Limits {
        body_max_bytes: 100,
    };

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn minimal_create_gets_defaults() {
        let a = parse_new(&json!({"title": " Hello ", "body": "b"}), L, "").unwrap();
        assert_eq!(a.title, "Hello");
        assert_eq!(a.status, Status::Draft);
        assert!(a.tags.is_empty() && a.slug.is_none() && a.category.is_none());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errs = parse_new(
            &json!({"title": "", "body": "x".repeat(101), "slug": "Bad Slug", "status": "gone",
                    "tags": ["ok", 3], "category": "", "colour": "red"}),
            L,
            "",
        )
        .unwrap_err();
        let mut f = fields(&errs);
        f.sort();
        assert_eq!(
            f,
            [
                "body", "category", "colour", "slug", "status", "tags.1", "title"
            ]
        );
    }

    #[test]
    fn missing_required_and_non_object() {
        let errs = parse_new(&json!({}), L, "").unwrap_err();
        assert_eq!(fields(&errs), ["title", "body"]);
        let errs = parse_new(&json!([1]), L, "4.").unwrap_err();
        assert_eq!(fields(&errs), ["4"]);
    }

    #[test]
    fn title_limit_counts_characters_not_bytes() {
        let ok = "é".repeat(TITLE_MAX_CHARS);
        assert!(parse_new(&json!({"title": ok, "body": ""}), L, "").is_ok());
        let long = "é".repeat(TITLE_MAX_CHARS + 1);
        let errs = parse_new(&json!({"title": long, "body": ""}), L, "").unwrap_err();
        assert_eq!(fields(&errs), ["title"]);
    }

    #[test]
    fn tags_are_normalised() {
        let a = parse_new(
            &json!({"title": "t", "body": "", "tags": ["Rust", " rust ", "SQL"]}),
            L,
            "",
        )
        .unwrap();
        assert_eq!(a.tags, ["rust", "sql"]);
    }

    #[test]
    fn patch_rules() {
        let p = parse_patch(&json!({"category": null, "status": "published"}), L).unwrap();
        assert_eq!(p.category, Some(None));
        assert_eq!(p.status, Some(Status::Published));
        let errs = parse_patch(&json!({}), L).unwrap_err();
        assert!(errs[0].message.contains("nothing to change"));
        let errs = parse_patch(&json!({"title": null, "external_id": "x", "x": 1}), L).unwrap_err();
        let mut f = fields(&errs);
        f.sort();
        assert_eq!(f, ["external_id", "title", "x"]);
    }

    #[test]
    fn slugs() {
        assert!(is_valid_slug("a-b-2"));
        for bad in ["", "-a", "a-", "a--b", "A", "a b", "ä"] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
        assert_eq!(slugify("Hello, World!  Again"), "hello-world-again");
        assert_eq!(slugify("¿?"), "article");
        assert_eq!(slugify("2024"), "article-2024");
        assert_eq!(slugify("Bulk"), "article-bulk");
        let errs =
            parse_new(&json!({"title": "t", "body": "", "slug": "bulk"}), L, "").unwrap_err();
        assert_eq!(fields(&errs), ["slug"]);
        assert!(is_valid_slug(&slugify(&"Long title ".repeat(30))));
        let errs = parse_new(&json!({"title": "t", "body": "", "slug": "123"}), L, "").unwrap_err();
        assert_eq!(fields(&errs), ["slug"]);
    }
}
