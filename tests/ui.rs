//! The admin UI's serving and the APIs only it uses (the browser tests are in
//! `tests/browser.rs`): the entry page and fingerprinted assets with content types,
//! ETags, revalidation and cache lifetimes, gzip, client routes falling back to the
//! entry page, missing and stale files 404, the strict CSP on every UI response, and no
//! inline script or style in the page (the CSP would block them).

mod common;

use common::spawn_app;

#[tokio::test]
async fn the_ui_is_served_with_types_etags_fallback_and_csp() {
    let app = spawn_app().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirect.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/admin/");

    // The entry page names the assets under their fingerprint.
    let page = app.anon.get(app.url("/admin/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    let start = page
        .find("/admin/assets/")
        .expect("fingerprinted asset URL");
    let fp: String = page[start + "/admin/assets/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(fp.len(), 16, "{page}");
    let js = format!("/admin/assets/{fp}/app.js");
    let css = format!("/admin/assets/{fp}/style.css");
    let module = format!("/admin/assets/{fp}/pages/articles.js");
    assert!(page.contains(&js) && page.contains(&css), "{page}");
    for (path, ctype, cache) in [
        ("/admin/", "text/html", "no-cache"),
        (
            js.as_str(),
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        (
            css.as_str(),
            "text/css",
            "public, max-age=31536000, immutable",
        ),
        (
            module.as_str(),
            "text/javascript",
            "public, max-age=31536000, immutable",
        ),
        // A client route: the entry page.
        ("/admin/users/7", "text/html", "no-cache"),
    ] {
        let res = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ctype),
            "{path}: {:?}",
            h["content-type"]
        );
        assert_eq!(h["cache-control"], cache, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].to_str().unwrap().to_string();
        // Weak: gzip and identity answers share it.
        assert!(etag.starts_with("W/\""), "{path}: {etag}");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty());
        if ctype == "text/html" {
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "no inline code: {path}"
            );
            assert!(!body.contains("<style"), "no inline style: {path}");
        }
        // Revalidation: the same ETag is a 304 without a body.
        let res = app
            .anon
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "{path}");
    }
    for missing in [
        "/admin/missing.js".to_string(),
        // Unfingerprinted, stale fingerprint, missing file under the right one.
        "/admin/assets/app.js".to_string(),
        "/admin/assets/0000000000000000/app.js".to_string(),
        format!("/admin/assets/{fp}/nothing.js"),
        "/admin/app.js".to_string(),
    ] {
        let res = app.anon.get(app.url(&missing)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{missing}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "not_found");
    }

    // gzip when the browser accepts it (and the same bytes once decoded).
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(app.url(&js))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    assert!(
        raw.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("accept-encoding")
    );
    let zipped = raw.bytes().await.unwrap();
    let plain = app.anon.get(app.url(&js)).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    assert!(
        zipped.len() < plain.len(),
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
    // The README of web/ is not served.
    assert_eq!(
        app.anon
            .get(app.url("/admin/README.md"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_migrations_settings_and_preview_apis() {
    // A secret in the configuration (the Sentry DSN is only used by `serve`'s telemetry
    // set-up, which in-process apps skip).
    let app = common::spawn_app_with(|c| {
        c.articles.body_max_bytes = 100;
        c.sentry.dsn = Some(appliance::config::Secret::new(
            "https://topsecretkey@sentry.invalid/1",
        ));
    })
    .await;
    let (s, _) = app
        .post(
            "/api/articles",
            serde_json::json!({"title": "A", "body": "b", "status": "published"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .post(
            "/api/articles",
            serde_json::json!({"title": "B", "body": "b"}),
        )
        .await;
    assert_eq!(s, 201);

    let (s, o) = app.get_json("/api/admin/overview").await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(o["articles"]["published"], 1);
    assert_eq!(o["articles"]["draft"], 1);
    assert_eq!(o["articles"]["deleted"], 0);
    for check in [
        "database_read",
        "database_write",
        "migrations",
        "disk",
        "search_index",
        "backup",
    ] {
        assert!(
            o["health"]["checks"][check]["detail"].is_string(),
            "{check}: {o}"
        );
    }
    assert!(o["storage"]["db_bytes"].as_u64().unwrap() > 0);
    assert!(o["storage"]["disk_free_bytes"].as_u64().unwrap() > 0);
    assert!(o["index"]["documents"].is_u64());
    assert!(o["backup"]["last_run"].is_null());
    assert!(o["errors"]["recent"].is_array());

    // The history counts the requests just made, in the current bucket.
    let (s, h) = app.get_json("/api/admin/metrics/history").await;
    assert_eq!(s, 200);
    let points = h["points"].as_array().unwrap();
    assert_eq!(points.len(), 120, "an hour of 30 s buckets");
    let last = points.last().unwrap();
    // The overview call is the dashboard's own polling: counted apart.
    assert!(last["requests"].as_u64().unwrap() >= 2, "{last}");
    assert!(last["polling"].as_u64().unwrap() >= 1, "{last}");
    assert!(last["p99_ms"].as_f64().unwrap() > 0.0);

    let (s, m) = app.get_json("/api/admin/migrations").await;
    assert_eq!(s, 200);
    let rows = m["migrations"].as_array().unwrap();
    assert!(rows.len() >= 5);
    assert!(
        rows.iter()
            .all(|r| r["state"] == "applied" && r["applied_on"].is_string())
    );
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(m["current_version"], m["target_version"]);
    assert_eq!(m["problems"], serde_json::json!([]));

    let (s, c) = app.get_json("/api/admin/settings").await;
    assert_eq!(s, 200);
    assert!(c["config"]["backup"]["keep_last"].is_u64(), "{c}");
    assert!(c["toml"].as_str().unwrap().contains("[backup]"));
    assert_eq!(
        c["config"]["sentry"]["dsn"], "[redacted]",
        "{}",
        c["config"]["sentry"]
    );
    assert!(!c.to_string().contains("topsecretkey"), "{c}");

    let (s, p) = app
        .post(
            "/api/articles/preview",
            serde_json::json!({"body": "# T\n\n<b>x</b>"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["html"], "<h1>T</h1>\n<p>&lt;b&gt;x&lt;/b&gt;</p>\n");
    let (s, e) = app
        .post("/api/articles/preview", serde_json::json!({}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["fields"][0]["field"], "body");
    // Longer than articles.body_max_bytes: refused, naming the limit.
    let (s, e) = app
        .post(
            "/api/articles/preview",
            serde_json::json!({"body": "x".repeat(101)}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("body_max_bytes (100 bytes)"),
        "{e}"
    );
    app.stop().await.unwrap();
}
