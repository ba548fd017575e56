//! The admin UI's serving (browser tests come with the admin UI issue): the entry page
//! and assets with content types, ETags and revalidation, client routes falling back to
//! the entry page, missing files 404, the strict CSP on every UI response, and no inline
//! script or style in the page (the CSP would block them).

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

    for (path, ctype) in [
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/style.css", "text/css"),
        // A client route: the entry page.
        ("/admin/users/7", "text/html"),
    ] {
        let res = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ctype),
            "{path}: {:?}",
            h["content-type"]
        );
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].to_str().unwrap().to_string();
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
    let res = app
        .anon
        .get(app.url("/admin/missing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
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
