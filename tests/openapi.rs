//! The OpenAPI document against the route table it is generated from: served publicly,
//! every route in it with its method, access, parameters, body and answers, nothing in
//! it that the router does not serve, every reference resolving. (Schemathesis then
//! holds the running server to it: scripts/test-api.sh, in the README's test command.)

mod common;

use std::collections::BTreeSet;

use appliance::http::caller::Access;
use appliance::http::openapi::{openapi_path, path_params};
use serde_json::Value;

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_served_and_matches_the_route_table() {
    let app = common::spawn_app().await;
    let res = app
        .anon
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "public, like any API's documentation");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], appliance::VERSION);

    let routes = appliance::http::route_table();
    let mut in_table = BTreeSet::new();
    for spec in &routes {
        let path = openapi_path(spec.path);
        let method = spec.method.as_str().to_lowercase();
        in_table.insert((path.clone(), method.clone()));
        let op = &doc["paths"][&path][&method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        let what = format!("{method} {path}");
        assert_ne!(op["summary"], "undocumented", "{what} has no description");
        // Who may call it.
        let access = match spec.access {
            Access::Public => "public",
            Access::PublicRead => "public_read",
            Access::Viewer => "viewer",
            Access::Editor => "editor",
            Access::Admin => "admin",
        };
        assert_eq!(op["x-access"], access, "{what}");
        let responses = op["responses"].as_object().unwrap();
        if !matches!(spec.access, Access::Public) {
            assert!(!op["security"].as_array().unwrap().is_empty(), "{what}");
            assert!(
                responses.contains_key("401") && responses.contains_key("403"),
                "{what}"
            );
        } else {
            assert_eq!(op["security"], serde_json::json!([]), "{what}");
        }
        // Every route answers with at least one success and the one error shape.
        assert!(
            responses
                .keys()
                .any(|k| k.starts_with('2') || k.starts_with('3')),
            "{what}"
        );
        for code in ["429", "500"] {
            assert_eq!(
                responses[code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{what} {code}"
            );
        }
        // Path parameters are declared, and answer 404 for no such thing.
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, path_params(spec.path), "{what}");
        if !declared.is_empty() {
            assert!(responses.contains_key("404"), "{what}");
        }
        if op.get("requestBody").is_some() {
            assert!(
                responses.contains_key("422") && responses.contains_key("415"),
                "{what}"
            );
        }
    }
    // Nothing in the document that the router does not serve.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                in_table.contains(&(path.clone(), method.clone())),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert_eq!(in_table.len(), routes.len(), "one operation per route");
    // Every $ref resolves; typed bodies come from their Rust types.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    let login = &doc["components"]["schemas"]["LoginBody"];
    assert_eq!(
        login["required"],
        serde_json::json!(["email", "password"]),
        "{login}"
    );
    let role = &doc["components"]["schemas"]["Role"]["enum"];
    assert_eq!(
        role,
        &serde_json::json!(["viewer", "editor", "admin"]),
        "{role}"
    );
    app.stop().await.unwrap();
}
