//! What each route of the route table takes and answers, for the OpenAPI document
//! (`openapi`): its summary, query parameters, body and success answers, and the error
//! answers of its own (those it shares with others follow from the route table). Typed
//! bodies come from their Rust types through `utoipa::ToSchema`; the article bodies,
//! which are checked field by field (`crate::articles`), from the same limits that
//! check them. A route missing here is described as `undocumented`, which
//! `tests/openapi.rs` refuses.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::articles::{
    CATEGORY_MAX_CHARS, EXTERNAL_ID_MAX_CHARS, SLUG_MAX_CHARS, TAG_MAX_CHARS, TAGS_MAX,
    TITLE_MAX_CHARS,
};
use crate::config::Config;

/// Named schemas gathered while describing routes (`components.schemas`).
#[derive(Default)]
pub struct Schemas(BTreeMap<String, Value>);

impl Schemas {
    /// A `$ref` to the schema of `T`, registering it and the schemas it refers to.
    pub fn of<T: ToSchema>(&mut self) -> Value {
        let mut deps = Vec::new();
        T::schemas(&mut deps);
        for (name, schema) in deps {
            self.0
                .insert(name, serde_json::to_value(schema).unwrap_or_default());
        }
        let name = T::name().to_string();
        self.0.insert(
            name.clone(),
            serde_json::to_value(T::schema()).unwrap_or_default(),
        );
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
    pub fn into_map(self) -> Map<String, Value> {
        self.0.into_iter().collect()
    }
}

/// A query parameter.
pub struct Param {
    pub name: &'static str,
    pub schema: Value,
    pub required: bool,
    pub description: &'static str,
}

fn q(name: &'static str, schema: Value, description: &'static str) -> Param {
    Param {
        name,
        schema,
        required: false,
        description,
    }
}

/// A request body.
pub struct Body {
    pub content_type: &'static str,
    pub schema: Value,
}

fn json_body(schema: Value) -> Option<Body> {
    Some(Body {
        content_type: "application/json",
        schema,
    })
}

/// A success answer.
pub struct Resp {
    pub status: u16,
    pub description: &'static str,
    pub content: Option<(&'static str, Value)>,
    /// OpenAPI links from this answer to other operations (stateful testing).
    pub links: Value,
}

fn ok(status: u16, description: &'static str, schema: Value) -> Resp {
    Resp {
        status,
        description,
        content: Some(("application/json", schema)),
        links: Value::Null,
    }
}

fn empty(status: u16, description: &'static str) -> Resp {
    Resp {
        status,
        description,
        content: None,
        links: Value::Null,
    }
}

/// What one route takes and answers.
pub struct Op {
    pub summary: &'static str,
    pub path_schema: Option<Value>,
    pub query: Vec<Param>,
    pub body: Option<Body>,
    pub ok: Vec<Resp>,
    /// Error answers of this route's own (beyond those the route table implies).
    pub errors: Vec<(u16, &'static str)>,
}

impl Op {
    fn new(summary: &'static str, ok: Vec<Resp>) -> Op {
        Op {
            summary,
            path_schema: None,
            query: Vec::new(),
            body: None,
            ok,
            errors: Vec::new(),
        }
    }
    fn query(mut self, query: Vec<Param>) -> Op {
        self.query = query;
        self
    }
    fn body(mut self, body: Option<Body>) -> Op {
        self.body = body;
        self
    }
    fn errors(mut self, errors: &[(u16, &'static str)]) -> Op {
        self.errors.extend_from_slice(errors);
        self
    }
    fn integer_path(mut self) -> Op {
        self.path_schema = Some(json!({"type": "integer", "format": "int64"}));
        self
    }
}

const CONFLICT: (u16, &str) = (
    409,
    "It conflicts with the current state (named in the message).",
);

fn object() -> Value {
    json!({"type": "object"})
}

fn limit(max: u32) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max})
}

fn time() -> Value {
    json!({"type": "string", "description": "RFC 3339, e.g. 2026-12-07T10:00:00Z"})
}

/// The fields of an article a client sends, with the limits that check them.
fn article_fields(config: &Config) -> Map<String, Value> {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max});
    let mut m = Map::new();
    m.insert("external_id".into(), text(EXTERNAL_ID_MAX_CHARS));
    m.insert(
        "slug".into(),
        json!({"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": SLUG_MAX_CHARS}),
    );
    m.insert("title".into(), text(TITLE_MAX_CHARS));
    m.insert(
        "body".into(),
        json!({"type": "string", "minLength": 1, "description": format!("Markdown, at most {} bytes", config.articles.body_max_bytes)}),
    );
    m.insert(
        "category".into(),
        json!({"type": ["string", "null"], "maxLength": CATEGORY_MAX_CHARS}),
    );
    m.insert(
        "tags".into(),
        json!({"type": "array", "maxItems": TAGS_MAX, "items": text(TAG_MAX_CHARS)}),
    );
    m.insert(
        "status".into(),
        json!({"type": "string", "enum": ["draft", "published"]}),
    );
    m
}

fn new_article(config: &Config) -> Value {
    json!({
        "type": "object",
        "required": ["title", "body"],
        "additionalProperties": false,
        "properties": article_fields(config),
    })
}

fn article_patch(config: &Config) -> Value {
    let mut fields = article_fields(config);
    fields.remove("external_id");
    json!({"type": "object", "additionalProperties": false, "minProperties": 1, "properties": fields})
}

/// Describe the route `method path`.
pub fn describe(method: &Method, path: &str, config: &Config, s: &mut Schemas) -> Op {
    let article = s.of::<crate::articles::Article>();
    match (method.as_str(), path) {
        ("GET", "/health") => Op::new("Liveness: the process answers.", vec![ok(200, "Alive.", object())]),
        ("GET", "/readyz") => Op::new(
            "Readiness: every check with its status and detail.",
            vec![ok(200, "Ready (ok or degraded).", object()), ok(503, "A check is failing.", object())],
        ),
        ("GET", "/api/openapi.json") => Op::new("This document.", vec![ok(200, "The OpenAPI 3.1 document.", object())]),
        ("GET", "/admin") => Op::new("The admin UI's address without the slash.", vec![empty(308, "Redirect to /admin/.")]),
        ("GET", "/admin/") => Op::new(
            "The admin UI.",
            vec![Resp { status: 200, description: "The UI's page.", content: Some(("text/html", json!({"type": "string"}))), links: Value::Null }],
        ),
        ("GET", "/admin/{*path}") => Op::new(
            "The admin UI's assets and pages.",
            vec![Resp { status: 200, description: "An asset, or the UI's page for a UI route.", content: Some(("*/*", json!({}))), links: Value::Null },
                 empty(304, "Not modified (If-None-Match).")],
        ),
        ("POST", "/api/auth/login") => Op::new(
            "Sign in: a session cookie and the CSRF token.",
            vec![ok(200, "Signed in; Set-Cookie carries the session.", object())],
        )
        .body(json_body(s.of::<super::sessions::LoginBody>()))
        .errors(&[(401, "Wrong email or password."), (403, "The account is disabled.")]),
        ("POST", "/api/auth/logout") => Op::new("Sign out (end this session).", vec![empty(204, "Signed out.")]),
        ("GET", "/api/auth/me") => Op::new("The caller: user, role, CSRF token.", vec![ok(200, "The caller.", object())]),
        ("GET", "/api/auth/setup") => Op::new("Whether the first admin still has to be created.", vec![ok(200, "The setup state.", object())]),
        ("POST", "/api/auth/setup") => Op::new(
            "Create the first admin with the one-time setup token from the log.",
            vec![ok(201, "Created and signed in.", object())],
        )
        .body(json_body(s.of::<super::account::SetupBody>()))
        .errors(&[(401, "Wrong or used setup token."), CONFLICT]),
        ("POST", "/api/auth/password") => Op::new(
            "Change one's own password (every session ends).",
            vec![ok(200, "Changed.", object()), empty(204, "Changed.")],
        )
        .body(json_body(s.of::<super::account::PasswordBody>())),
        ("POST", "/api/auth/reset-password") => Op::new(
            "Set a password with a one-time reset link's token.",
            vec![ok(200, "Set.", object()), empty(204, "Set.")],
        )
        .body(json_body(s.of::<super::account::ResetBody>()))
        .errors(&[(401, "The link is wrong, used or expired.")]),
        ("GET", "/api/auth/tokens") => Op::new("API tokens: one's own, or (admin) another user's or all.", vec![ok(200, "The tokens (never their secrets).", object())])
            .query(vec![
                q("user_id", json!({"type": "integer", "format": "int64"}), "Admin: this user's tokens."),
                q("all", json!({"type": "boolean"}), "Admin: every user's tokens."),
            ]),
        ("POST", "/api/auth/tokens") => Op::new("Create an API token; the token is in this answer only.", vec![ok(201, "The token, once.", object())])
            .body(json_body(s.of::<super::tokens::NewTokenBody>()))
            .errors(&[CONFLICT, (404, "No such user (user_id).")]),
        ("DELETE", "/api/auth/tokens/{id}") => Op::new("Revoke an API token.", vec![empty(204, "Revoked.")])
            .integer_path()
            .errors(&[CONFLICT]),
        ("GET", "/api/articles") => Op::new("List articles, newest first, a page at a time.", vec![ok(200, "A page: items (without bodies), next_cursor, and total with count=true.", object())])
            .query(vec![
                q("category", json!({"type": "string"}), "Only this category."),
                q("tag", json!({"type": "string"}), "Only articles with this tag."),
                q("status", json!({"type": "string", "enum": ["draft", "published"]}), "Drafts need the editor role."),
                q("updated_since", time(), "Only articles changed since."),
                q("limit", limit(config.articles.list_max_limit), "Page size."),
                q("cursor", json!({"type": "string"}), "next_cursor of the previous page."),
                q("deleted", json!({"type": "boolean"}), "Editors: the trash (soft-deleted articles, with deleted_by and purge_at) instead."),
                q("count", json!({"type": "boolean"}), "Add `total`: how many articles match across all pages."),
            ]),
        ("POST", "/api/articles") => {
            let mut created = ok(201, "Created; Location names it.", article.clone());
            created.links = json!({
                "GetArticle": {"operationId": "get_articles_key", "parameters": {"key": "$response.body#/id"}},
                "PatchArticle": {"operationId": "patch_articles_key", "parameters": {"key": "$response.body#/id"}},
                "DeleteArticle": {"operationId": "delete_articles_key", "parameters": {"key": "$response.body#/id"}},
            });
            Op::new(
                "Create an article, or update the one with the same external_id.",
                vec![created, ok(200, "Updated (same external_id).", article.clone())],
            )
            .body(json_body(new_article(config)))
            .errors(&[CONFLICT])
        }
        ("POST", "/api/articles/bulk") => Op::new(
            "Create or update many articles at once (a JSON array, or NDJSON), each item on its own.",
            vec![ok(200, "Per item: created, updated, unchanged (already as given: nothing written), or the item's errors.", object())],
        )
        .body(Some(Body { content_type: "application/json", schema: json!({"type": "array", "minItems": 1, "maxItems": config.articles.bulk_max_items, "items": new_article(config)}) }))
        .errors(&[CONFLICT]),
        ("POST", "/api/articles/import") => Op::new(
            "Import a JSON-lines file (one article object per line, as `articles export` writes): the CLI's import over HTTP. Articles with a known external_id are updated (or left alone when already as given); bad lines are reported by number.",
            vec![ok(200, "The report: created, updated, unchanged, bad, aborted_at, problems (line, message; the first 1000).", object())],
        )
        .query(vec![q("on_error", json!({"type": "string", "enum": ["skip", "abort"]}), "skip (default): report a bad line and go on; abort: stop there, keeping what came before.")])
        .body(Some(Body { content_type: "text/plain", schema: json!({"type": "string", "minLength": 1}) })),
        ("POST", "/api/articles/preview") => Op::new("Render Markdown as the article page would.", vec![ok(200, "The safe HTML.", object())])
            .body(json_body(json!({"type": "object", "required": ["body"], "additionalProperties": false, "properties": {"body": {"type": "string"}}}))),
        ("GET", "/api/articles/{key}") => Op::new(
            "One article by id or slug, with its version as ETag (If-None-Match: 304 when unchanged).",
            vec![ok(200, "The article (with `html` for render=html).", article.clone()), empty(304, "Not modified (If-None-Match).")],
        )
        .query(vec![q("render", json!({"type": "string", "enum": ["html"]}), "Add `html`: the body rendered and sanitised, as a reader sees it.")]),
        ("PATCH", "/api/articles/{key}") => Op::new(
            "Change some fields of an article; with If-Match (its ETag), only while it is at that version.",
            vec![ok(200, "The article as changed, with its new ETag.", article.clone())],
        )
        .body(json_body(article_patch(config)))
        .errors(&[CONFLICT, (412, "If-Match names an older version; `current` is the article now, ETag its version.")]),
        ("DELETE", "/api/articles/{key}") => Op::new("Delete an article (soft; purge=true for good).", vec![empty(204, "Deleted.")])
            .query(vec![q("purge", json!({"type": "boolean"}), "Remove it for good, not restorable.")]),
        ("POST", "/api/articles/{key}/restore") => Op::new("Undo a soft delete.", vec![ok(200, "The restored article.", article.clone())])
            .errors(&[CONFLICT]),
        ("GET", "/api/search") => Op::new("Full-text search of published articles.", vec![ok(200, "Hits with snippets, total, and warnings if any.", object())])
            .query(vec![
                Param { name: "q", schema: json!({"type": "string", "minLength": 1}), required: true, description: "The words to search for (query syntax)." },
                q("category", json!({"type": "string"}), "Only this category."),
                q("tag", json!({"type": "string"}), "Only this tag."),
                q("limit", limit(config.search.max_limit), "Hits per page."),
                q("offset", json!({"type": "integer", "minimum": 0, "maximum": 10_000}), "Hits to skip."),
                q("strict", json!({"type": "boolean"}), "Refuse bad query syntax instead of reading it as words."),
                q("fresh", json!({"type": "boolean"}), "Wait until every write acknowledged before is searchable."),
            ]),
        ("GET", "/api/admin/overview") => Op::new("The dashboard: health, content, index, storage, backups, errors.", vec![ok(200, "The overview.", object())]),
        ("GET", "/api/admin/metrics/history") => Op::new("The last hour of request rate, latency and errors.", vec![ok(200, "Buckets.", object())]),
        ("GET", "/api/admin/migrations") => Op::new("Migrations in the binary and the database.", vec![ok(200, "The migrations.", object())]),
        ("GET", "/api/admin/settings") => Op::new("The effective configuration (secrets redacted).", vec![ok(200, "The settings.", object())]),
        ("GET", "/api/admin/index") => Op::new("The search index: documents, position, backlog.", vec![ok(200, "The index's state.", object())]),
        ("GET", "/api/admin/index/verify") => Op::new("Compare the index with the database.", vec![ok(200, "Consistent or the drift.", object())]),
        ("POST", "/api/admin/index/rebuild") => Op::new("Rebuild the index (a background job).", vec![ok(202, "The job; follow it at Location.", object())])
            .errors(&[CONFLICT]),
        ("GET", "/api/admin/jobs") => Op::new("Background jobs, newest first.", vec![ok(200, "The jobs.", object())])
            .query(vec![
                q("kind", json!({"type": "string", "enum": ["index_rebuild", "backup", "backup_verify"]}), "Only this kind."),
                q("limit", limit(500), "How many."),
            ]),
        ("GET", "/api/admin/jobs/{id}") => Op::new("One background job, with its progress while it runs.", vec![ok(200, "The job.", object())]),
        ("GET", "/api/admin/backups") => Op::new("Archives, the running backup, the last run, schedule and retention, and the off-site copies in backup.remote's bucket (`offsite`: configured, bucket, copies by archive name, or error).", vec![ok(200, "The backups.", object())]),
        ("POST", "/api/admin/backups") => Op::new("Take a backup now (a background job).", vec![ok(202, "Started; the job.", object())])
            .errors(&[CONFLICT]),
        ("GET", "/api/admin/backups/{name}") => Op::new(
            "Download an archive.",
            vec![Resp { status: 200, description: "The archive.", content: Some(("application/zstd", json!({"type": "string", "contentMediaType": "application/zstd"}))), links: Value::Null }],
        ),
        ("POST", "/api/admin/backups/{name}/verify") => Op::new("Verify an archive (a background job); its result holds what the archive contains (created_at, versions, row counts, origin) beside the live data.", vec![ok(202, "The job; follow it at Location.", object())])
            .errors(&[CONFLICT]),
        ("POST", "/api/admin/backups/{name}/restore") => Op::new(
            "Restore an archive: the server stops serving, restores at its restart in the same process (verified first, the live data kept aside, every step undone on a failure) and serves again. last_restore in GET /api/admin/backups says how it ended.",
            vec![ok(202, "Accepted: the server restarts now.", object())],
        )
        .body(json_body(s.of::<super::backups::RestoreBody>()))
        .errors(&[CONFLICT]),
        ("GET", "/api/admin/users") => Op::new("Users.", vec![ok(200, "The users.", object())]),
        ("POST", "/api/admin/users") => Op::new("Create a user (with a password, or a one-time set-password link).", vec![ok(201, "Created.", object())])
            .body(json_body(s.of::<super::users::NewUserBody>()))
            .errors(&[CONFLICT]),
        ("GET", "/api/admin/users/{id}") => Op::new("One user.", vec![ok(200, "The user.", object())]).integer_path(),
        ("PATCH", "/api/admin/users/{id}") => Op::new("Change a user's role, name or disabled state.", vec![ok(200, "The user as changed.", object())])
            .integer_path()
            .body(json_body(s.of::<super::users::PatchBody>()))
            .errors(&[CONFLICT]),
        ("POST", "/api/admin/users/{id}/reset-link") => Op::new("A one-time password reset link for a user.", vec![ok(200, "The link.", object()), ok(201, "The link.", object())])
            .integer_path(),
        ("GET", "/api/admin/alerts") => Op::new("Alert rules and the alerts firing.", vec![ok(200, "The alerts.", object())]),
        ("GET", "/api/admin/errors") => Op::new("Recorded error groups, most recently seen first.", vec![ok(200, "The groups.", object())])
            .query(vec![
                q("category", json!({"type": "string", "enum": ["database", "validation", "authentication", "network", "business_logic", "system"]}), "Only this category."),
                q("severity", json!({"type": "string", "enum": ["low", "medium", "high", "critical"]}), "Only this severity."),
                q("component", json!({"type": "string"}), "Only this component."),
                q("since", time(), "Seen since."),
                q("limit", limit(500), "How many."),
                q("offset", json!({"type": "integer", "minimum": 0}), "How many to skip."),
            ]),
        ("GET", "/api/admin/audit") => Op::new("The audit log, newest first.", vec![ok(200, "Entries and next_before.", object())])
            .query(vec![
                q("action", json!({"type": "string"}), "An action, or a prefix ending in a dot (auth.)."),
                q("actor", json!({"type": "string"}), "Who acted."),
                q("outcome", json!({"type": "string", "enum": ["success", "failure", "denied"]}), "Only this outcome."),
                q("since", time(), "At or after."),
                q("until", time(), "Before."),
                q("before", json!({"type": "integer", "format": "int64"}), "next_before of the previous page."),
                q("limit", limit(500), "How many."),
            ]),
        _ => Op::new("undocumented", vec![ok(200, "undocumented", object())]),
    }
}
