//! The API's OpenAPI 3.1 document, served at `GET /api/openapi.json` (public, like the
//! documentation of any API). It is generated, not written: every operation comes from
//! the route table the router is built from (method, path, who may call it, its rate
//! tier), typed request bodies and answers from their Rust types (`utoipa::ToSchema`),
//! and what each route takes and answers from `api_doc`. The answers every route shares
//! follow from the route table: 401/403 where a role is needed, 429 for the rate limits,
//! 400/413/415/422 where there is a body, 404 where there is a path parameter, and the
//! one error shape for all of them. `tests/openapi.rs` holds the document and the route
//! table together, and Schemathesis holds the server to the document.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde_json::{Map, Value, json};

use super::api_doc::{self, Op, Schemas};
use super::{Access, RouteSpec, Tier};
use crate::config::Config;
use crate::state::AppState;

/// `GET /api/openapi.json`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(state.config()))
}

/// The path of a route as OpenAPI writes it: axum's catch-all `{*path}` is `{path}`.
pub fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The whole document for the routes of [`super::route_table`].
pub fn document(config: &Config) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: Map<String, Value> = Map::new();
    for spec in super::route_table() {
        let op = api_doc::describe(&spec.method, spec.path, config, &mut schemas);
        let operation = operation(&spec, &op);
        let item = paths
            .entry(openapi_path(spec.path))
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_lowercase()] = operation;
    }
    let mut components = schemas.into_map();
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "appliance",
            "version": crate::VERSION,
            "description": "The JSON API of appliance: articles and search, sign-in and API tokens, users, backups, background jobs and operations. Errors always have the shape of the Error schema. Authenticate with an API token (Authorization: Bearer) or the session cookie from POST /api/auth/login (then send X-CSRF-Token on changes).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (POST /api/auth/tokens or `appliance token create`)."},
                "session": {"type": "apiKey", "in": "cookie", "name": super::sessions::SESSION_COOKIE, "description": "The session cookie from POST /api/auth/login; changes also need the X-CSRF-Token header."},
            },
        },
    })
}

fn operation(spec: &RouteSpec, op: &Op) -> Value {
    let mut o = json!({
        "operationId": operation_id(&spec.method, spec.path),
        "summary": op.summary,
        "tags": [tag(spec.path)],
        "x-access": access_name(spec.access),
        "x-rate-tier": tier_name(spec.tier),
    });
    o["security"] = match spec.access {
        Access::Public => json!([]),
        // Anonymous callers may read while security.public_read is on.
        Access::PublicRead => json!([{}, {"bearer": []}, {"session": []}]),
        _ => json!([{"bearer": []}, {"session": []}]),
    };
    let mut params: Vec<Value> = path_params(spec.path)
        .into_iter()
        .map(|name| {
            let schema = op
                .path_schema
                .clone()
                .unwrap_or_else(|| json!({"type": "string"}));
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    params.extend(op.query.iter().map(|p| {
        json!({"name": p.name, "in": "query", "required": p.required, "schema": p.schema, "description": p.description})
    }));
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(body) = &op.body {
        o["requestBody"] = json!({
            "required": true,
            "content": {body.content_type: {"schema": body.schema}},
        });
    }
    let mut responses = Map::new();
    for r in &op.ok {
        let mut v = json!({"description": r.description});
        if let Some((ct, schema)) = &r.content {
            v["content"] = json!({*ct: {"schema": schema}});
        }
        if !r.links.is_null() {
            v["links"] = r.links.clone();
        }
        responses.insert(r.status.to_string(), v);
    }
    for (status, why) in errors(spec, op) {
        responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": why,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
        });
    }
    o["responses"] = Value::Object(responses);
    o
}

/// The error answers of a route: those every route can give, those its access, tier,
/// body and parameters imply, and its own.
fn errors(spec: &RouteSpec, op: &Op) -> Vec<(u16, &'static str)> {
    let mut out = vec![
        (
            408,
            "The request took longer than server.request_timeout_secs.",
        ),
        (
            429,
            "Over a rate limit; Retry-After says when to try again.",
        ),
        (
            500,
            "An internal error; the log has the cause under the request id.",
        ),
        (503, "The database or disk cannot serve the request now."),
    ];
    match spec.access {
        Access::Public if spec.tier == Tier::Auth => {
            out.push((403, "A cross-site request (Origin or Sec-Fetch-Site)."));
        }
        Access::Public => {}
        Access::PublicRead => {
            out.push((401, "Bad credentials, or anonymous reading is off."));
            out.push((403, "The caller's role may not do this."));
        }
        _ => {
            out.push((401, "No or bad credentials."));
            out.push((
                403,
                "The caller's role may not do this, or a cookie request without its CSRF token.",
            ));
        }
    }
    if op.body.is_some() {
        out.push((400, "The body is not JSON."));
        out.push((413, "The body is larger than the limit."));
        out.push((415, "The body is not application/json."));
        out.push((422, "A field is wrong; `fields` names each one."));
    }
    if !op.query.is_empty() {
        out.push((
            422,
            "A query parameter is wrong or unknown; `fields` names it.",
        ));
    }
    if !path_params(spec.path).is_empty() {
        out.push((400, "A path parameter cannot be read."));
        out.push((404, "No such thing."));
    }
    out.extend(op.errors.iter().copied());
    out
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "The one error shape of the API.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": [
                    "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
                    "timeout", "conflict", "payload_too_large", "unsupported_media_type",
                    "invalid_input", "rate_limited", "unavailable", "internal", "error"
                ]},
                "message": {"type": "string"},
                "fields": {"type": "array", "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                }},
                "request_id": {"type": "string"},
            },
        }},
    })
}

/// The names of a path's parameters (`{key}`, `{*path}`).
pub fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| p.trim_start_matches('*').to_string())
        .collect()
}

fn operation_id(method: &Method, path: &str) -> String {
    let words: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api")
        .map(|s| {
            s.trim_start_matches('{')
                .trim_start_matches('*')
                .trim_end_matches('}')
                .replace('-', "_")
        })
        .collect();
    format!("{}_{}", method.as_str().to_lowercase(), words.join("_"))
}

fn tag(path: &str) -> &'static str {
    match path {
        p if p.starts_with("/api/auth") => "account",
        p if p.starts_with("/api/articles") || p.starts_with("/api/search") => "articles",
        p if p.starts_with("/api/admin/backups") => "backups",
        p if p.starts_with("/api/admin/jobs") || p.starts_with("/api/admin/index") => "jobs",
        p if p.starts_with("/api/admin/users") || p.starts_with("/api/admin/audit") => "users",
        p if p.starts_with("/api/admin") => "operations",
        p if p.starts_with("/admin") => "ui",
        _ => "probes",
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Public => "public",
        Access::PublicRead => "public_read",
        Access::Viewer => "viewer",
        Access::Editor => "editor",
        Access::Admin => "admin",
    }
}

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::General => "general",
        Tier::Auth => "auth",
        Tier::Expensive => "expensive",
    }
}
