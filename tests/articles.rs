//! Articles and search through the real server on 127.0.0.1:0: CRUD and every validation
//! path, idempotent ingest under concurrent retries, bulk, keyset pagination under
//! inserts, search semantics, the index following deletes, rebuild, and a damaged index.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, spawn_app};
use serde_json::{Value, json};

impl TestApp {
    async fn delete(&self, path: &str) -> u16 {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    async fn create(&self, body: Value) -> Value {
        let (status, v) = self.post("/api/articles", body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Poll the search until `pred` holds on the result (index commits are asynchronous).
    async fn search_until(&self, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = self.get_json(&format!("/api/search?{query}")).await;
            assert_eq!(status, 200, "{query}: {v}");
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "search {query} never satisfied: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn total(v: &Value) -> u64 {
    v["total"].as_u64().unwrap_or(u64::MAX)
}

fn ids(v: &Value) -> Vec<i64> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect()
}

fn field_names(v: &Value) -> Vec<String> {
    let mut f: Vec<String> = v["error"]["fields"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

#[tokio::test]
async fn crud_round_trip_by_id_and_slug() {
    let app = spawn_app().await;
    let a = app
        .create(
            json!({"title": "Getting Started", "body": "Hello **world**",
                       "category": "guides", "tags": ["Intro", "basics"]}),
        )
        .await;
    assert_eq!(a["slug"], "getting-started");
    assert_eq!(a["status"], "draft");
    assert_eq!(a["tags"], json!(["intro", "basics"]));
    assert!(a["published_at"].is_null());
    let id = a["id"].as_i64().unwrap();

    let (s, by_id) = app.get_json(&format!("/api/articles/{id}")).await;
    assert_eq!(s, 200);
    let (s, by_slug) = app.get_json("/api/articles/getting-started").await;
    assert_eq!(s, 200);
    assert_eq!(by_id, by_slug);

    // Same title again: a free slug is derived.
    let b = app
        .create(json!({"title": "Getting started!", "body": ""}))
        .await;
    assert_eq!(b["slug"], "getting-started-2");

    let (s, p) = app
        .patch(
            &format!("/api/articles/{id}"),
            json!({"status": "published", "category": null}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "published");
    assert!(p["category"].is_null());
    assert!(p["published_at"].is_string());
    assert_eq!(p["title"], "Getting Started", "untouched fields stay");

    // Soft delete: gone for readers, back after restore.
    assert_eq!(app.delete(&format!("/api/articles/{id}")).await, 204);
    assert_eq!(app.get(&format!("/api/articles/{id}")).await.status(), 404);
    assert_eq!(app.delete(&format!("/api/articles/{id}")).await, 404);
    let (s, r) = app
        .post(&format!("/api/articles/{id}/restore"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["deleted_at"].is_null());

    // Hard delete: the row is gone.
    assert_eq!(
        app.delete(&format!("/api/articles/{id}?purge=true")).await,
        204
    );
    let (s, _) = app
        .post(&format!("/api/articles/{id}/restore"), json!({}))
        .await;
    assert_eq!(s, 404);
    let n: i64 = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row("SELECT count(*) FROM articles WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(app.get("/api/articles/999999").await.status(), 404);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn validation_names_every_field_and_writes_nothing() {
    let app = spawn_app_small_body().await;
    let cases = [
        (json!({}), vec!["body", "title"]),
        (json!({"title": "x".repeat(301), "body": ""}), vec!["title"]),
        (
            json!({"title": "t", "body": "x".repeat(2000)}),
            vec!["body"],
        ),
        (
            json!({"title": "t", "body": "", "slug": "Not A Slug"}),
            vec!["slug"],
        ),
        (
            json!({"title": "t", "body": "", "status": "live"}),
            vec!["status"],
        ),
        (
            json!({"title": "t", "body": "", "tags": "rust"}),
            vec!["tags"],
        ),
        (
            json!({"title": "t", "body": "", "tags": ["x".repeat(41)]}),
            vec!["tags.0"],
        ),
        (
            json!({"title": "t", "body": "", "category": "c".repeat(65)}),
            vec!["category"],
        ),
        (
            json!({"title": 7, "body": [], "extra": true}),
            vec!["body", "extra", "title"],
        ),
    ];
    for (body, expected) in cases {
        let (status, v) = app.post("/api/articles", body.clone()).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_input");
        assert_eq!(field_names(&v), expected, "{body}: {v}");
    }
    // Not JSON at all: 400 with the JSON error shape, never a 500.
    let res = app
        .client
        .post(app.url("/api/articles"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    // Wrong media type.
    let res = app
        .client
        .post(app.url("/api/articles"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    let (_, list) = app.get_json("/api/articles").await;
    assert_eq!(list["items"], json!([]), "nothing was written");

    // Duplicate slug: 409 naming it; PATCH onto a taken slug too.
    app.create(json!({"title": "One", "body": "", "slug": "taken"}))
        .await;
    let (status, v) = app
        .post(
            "/api/articles",
            json!({"title": "Two", "body": "", "slug": "taken"}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("taken"),
        "{v}"
    );
    assert_eq!(v["error"]["fields"][0]["field"], "slug");
    let other = app.create(json!({"title": "Three", "body": ""})).await;
    let (status, _) = app
        .patch(
            &format!("/api/articles/{}", other["id"]),
            json!({"slug": "taken"}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, v) = app
        .patch(&format!("/api/articles/{}", other["id"]), json!({}))
        .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = app.get_json("/api/articles?limit=0&colour=red").await;
    assert_eq!(status, 422);
    assert_eq!(field_names(&v), ["colour", "limit"]);
    app.stop().await.unwrap();
}

async fn spawn_app_small_body() -> TestApp {
    common::spawn_app_with(|c| c.articles.body_max_bytes = 1000).await
}

#[tokio::test]
async fn concurrent_retries_with_one_external_id_make_one_row() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/articles");
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"external_id": "crm-42", "title": format!("Retry {i}"), "body": "same"});
            let res = client.post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            (status, v["id"].as_i64().unwrap())
        }));
    }
    let mut statuses = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, id) = t.await.unwrap();
        statuses.push(s);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 1, "one article: {ids:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        7,
        "{statuses:?}"
    );
    let n: i64 = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM articles WHERE external_id = 'crm-42'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bulk_json_and_ndjson_all_or_nothing() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/api/articles/bulk",
            json!([{"title": "Bulk one", "body": "a", "external_id": "b1"},
                   {"title": "Bulk two", "body": "b", "status": "published"}]),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"], 2);
    assert_eq!(v["items"][1]["result"], "created");

    // NDJSON, with an update of b1 and a blank line.
    let nd = "{\"title\":\"Bulk one v2\",\"body\":\"a2\",\"external_id\":\"b1\"}\n\n{\"title\":\"Bulk three\",\"body\":\"c\"}\n";
    let res = app
        .client
        .post(app.url("/api/articles/bulk"))
        .header("content-type", "application/x-ndjson")
        .body(nd)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["created"].as_u64(), v["updated"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(
        v["items"][1]["index"], 2,
        "NDJSON items are numbered by line"
    );

    let count = |app: &TestApp| {
        rusqlite::Connection::open(app.db_path())
            .unwrap()
            .query_row("SELECT count(*) FROM articles", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(count(&app), 3);

    // One invalid item: 422 naming it, nothing written.
    let (s, v) = app
        .post(
            "/api/articles/bulk",
            json!([{"title": "ok", "body": ""}, {"title": "", "body": ""}]),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(field_names(&v), ["1.title"]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    // One conflicting item (slug taken): 409 naming it, nothing written.
    let (s, v) = app
        .post(
            "/api/articles/bulk",
            json!([{"title": "fresh", "body": ""}, {"title": "x", "body": "", "slug": "bulk-two"}]),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["fields"][0]["field"], "1.slug");
    assert_eq!(count(&app), 3, "the transaction rolled back");
    app.stop().await.unwrap();

    let app = common::spawn_app_with(|c| c.articles.bulk_max_items = 2).await;
    let (s, v) = app
        .post("/api/articles/bulk", json!([{"title": "a", "body": ""}, {"title": "b", "body": ""}, {"title": "c", "body": ""}]))
        .await;
    assert_eq!(s, 413, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bulk_max_items")
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn keyset_pages_stay_stable_while_articles_are_added() {
    let app = spawn_app().await;
    for i in 0..25 {
        app.create(json!({"title": format!("Page item {i}"), "body": "", "category": if i % 2 == 0 { "even" } else { "odd" }, "tags": [format!("t{}", i % 3)]}))
            .await;
    }
    let (_, first) = app.get_json("/api/articles?limit=10").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    assert!(
        first["items"][0].get("body").is_none(),
        "listing leaves the body out"
    );
    // New articles arrive between page 1 and page 2.
    for i in 0..5 {
        app.create(json!({"title": format!("Late {i}"), "body": ""}))
            .await;
    }
    let (_, second) = app
        .get_json(&format!("/api/articles?limit=10&cursor={cursor}"))
        .await;
    let (_, third) = app
        .get_json(&format!(
            "/api/articles?limit=10&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ))
        .await;
    let mut seen: Vec<i64> = Vec::new();
    for page in [&first, &second, &third] {
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(
        seen.len(),
        25,
        "every original article exactly once: {seen:?}"
    );
    assert_eq!(seen, (1..=25).rev().collect::<Vec<i64>>());
    assert!(third["next_cursor"].is_null());

    let (_, even) = app.get_json("/api/articles?category=even&limit=100").await;
    assert_eq!(even["items"].as_array().unwrap().len(), 13);
    let (_, t1) = app.get_json("/api/articles?tag=T1&limit=100").await;
    assert_eq!(t1["items"].as_array().unwrap().len(), 8);
    let (_, drafts) = app.get_json("/api/articles?status=published").await;
    assert_eq!(drafts["items"], json!([]));
    let (_, recent) = app
        .get_json("/api/articles?updated_since=2000-01-01T00:00:00Z&limit=1")
        .await;
    assert_eq!(recent["items"].as_array().unwrap().len(), 1);
    let (s, _) = app.get_json("/api/articles?updated_since=yesterday").await;
    assert_eq!(s, 422);
    app.stop().await.unwrap();
}

async fn corpus(app: &TestApp) {
    let docs = [
        (
            "Write-ahead logging explained",
            "SQLite keeps a separate log so readers never block writers. Checkpoints copy pages back.",
            "databases",
            vec!["sqlite"],
        ),
        (
            "Checkpoint tuning",
            "How often the write-ahead log is copied back decides commit latency.",
            "databases",
            vec!["sqlite", "performance"],
        ),
        (
            "Mentoring conversations",
            "Good mentors ask questions before giving answers; logging progress helps.",
            "mentoring",
            vec!["people"],
        ),
        (
            "Search engines in Rust",
            "Tantivy is a search engine library inspired by Lucene, with stemming.",
            "search",
            vec!["rust"],
        ),
        (
            "Escaping <b>HTML</b>",
            "Never trust <script>alert('x')</script> in logging output & snippets.",
            "security",
            vec!["web"],
        ),
    ];
    for (title, body, category, tags) in docs {
        app.create(json!({"title": title, "body": body, "category": category, "tags": tags, "status": "published"}))
            .await;
    }
    app.create(json!({"title": "Draft about logging", "body": "logging draft", "status": "draft"}))
        .await;
    app.search_until("q=lucene", |v| total(v) == 1).await;
    app.search_until("q=tuning", |v| total(v) == 1).await;
}

#[tokio::test]
async fn search_language_filters_ranking_and_safe_snippets() {
    let app = spawn_app().await;
    corpus(&app).await;
    // Words (stemmed: "logging" finds "log" too), drafts never appear.
    let v = app.search_until("q=logging", |v| total(v) >= 3).await;
    assert_eq!(total(&v), 4, "{v}");
    assert!(
        !v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["title"] == "Draft about logging")
    );
    // Title matches rank above body-only matches.
    assert_eq!(
        v["hits"][0]["title"], "Write-ahead logging explained",
        "{v}"
    );
    // Phrase.
    let v = app
        .search_until("q=%22readers+never+block%22", |_| true)
        .await;
    assert_eq!(total(&v), 1, "{v}");
    let v = app
        .search_until("q=%22never+readers+block%22", |_| true)
        .await;
    assert_eq!(total(&v), 0, "word order matters in a phrase: {v}");
    // Exclusion.
    let v = app.search_until("q=logging+-mentors", |_| true).await;
    assert_eq!(total(&v), 3, "{v}");
    // Prefix.
    let v = app.search_until("q=tanti*", |_| true).await;
    assert_eq!(total(&v), 1, "{v}");
    // Field scope.
    let v = app.search_until("q=title:checkpoint", |_| true).await;
    assert_eq!(total(&v), 1, "{v}");
    assert_eq!(v["hits"][0]["title"], "Checkpoint tuning");
    let v = app.search_until("q=body:checkpoints", |_| true).await;
    assert!(total(&v) >= 1);
    // Filters.
    let v = app.search_until("q=log&category=databases", |_| true).await;
    assert_eq!(total(&v), 2, "{v}");
    let v = app.search_until("q=log&tag=PERFORMANCE", |_| true).await;
    assert_eq!(total(&v), 1, "{v}");
    // Snippets: matched terms marked, everything else escaped.
    let v = app.search_until("q=script", |_| true).await;
    let snippet = v["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>script</mark>"), "{snippet}");
    assert!(!snippet.contains("<script>"), "{snippet}");
    assert!(snippet.contains("&lt;"), "{snippet}");
    // Limit/offset and took_ms.
    let v = app
        .search_until("q=logging&limit=2&offset=1", |_| true)
        .await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 2);
    assert_eq!(total(&v), 4);
    assert!(v["took_ms"].is_number());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_queries_say_where_or_fall_back() {
    let app = spawn_app().await;
    corpus(&app).await;
    let (s, v) = app
        .get_json("/api/search?q=%22readers+never&strict=true")
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["fields"][0]["field"], "q");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("position 0"),
        "{v}"
    );
    let (s, v) = app.get_json("/api/search?q=colour:red&strict=true").await;
    assert_eq!(s, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{v}"
    );
    // Lenient (the default): plain words, with a warning.
    let (s, v) = app.get_json("/api/search?q=%22readers+never").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(total(&v), 1);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("position 0"),
        "{v}"
    );
    for bad in [
        "/api/search",
        "/api/search?q=",
        "/api/search?q=a&limit=0",
        "/api/search?q=a&limit=5000",
        "/api/search?q=a&x=1",
    ] {
        let (s, v) = app.get_json(bad).await;
        assert_eq!(s, 422, "{bad}: {v}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn deletes_and_edits_reach_the_index() {
    let app = spawn_app().await;
    let a = app
        .create(json!({"title": "Quokka facts", "body": "marsupial", "status": "published"}))
        .await;
    let b = app
        .create(json!({"title": "Quokka photos", "body": "marsupial", "status": "published"}))
        .await;
    app.search_until("q=quokka", |v| total(v) == 2).await;
    // Soft delete: gone from search.
    assert_eq!(app.delete(&format!("/api/articles/{}", a["id"])).await, 204);
    let v = app.search_until("q=quokka", |v| total(v) == 1).await;
    assert_eq!(ids(&v), [b["id"].as_i64().unwrap()]);
    // Restore: back.
    app.post(&format!("/api/articles/{}/restore", a["id"]), json!({}))
        .await;
    app.search_until("q=quokka", |v| total(v) == 2).await;
    // Unpublish: gone; edit the title: the new words are found.
    app.patch(
        &format!("/api/articles/{}", b["id"]),
        json!({"status": "draft"}),
    )
    .await;
    app.search_until("q=quokka", |v| total(v) == 1).await;
    app.patch(
        &format!("/api/articles/{}", a["id"]),
        json!({"title": "Wombat facts"}),
    )
    .await;
    app.search_until("q=wombat", |v| total(v) == 1).await;
    app.search_until("q=quokka", |v| total(v) == 0).await;
    // Hard delete: gone from both.
    assert_eq!(
        app.delete(&format!("/api/articles/{}?purge=true", a["id"]))
            .await,
        204
    );
    app.search_until("q=wombat", |v| total(v) == 0).await;
    let (_, verify) = app.get_json("/api/admin/index/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rebuild_keeps_search_working_and_repairs_a_damaged_index() {
    let app = spawn_app().await;
    corpus(&app).await;
    let job = app.run_job("/api/admin/index/rebuild").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["result"]["documents"], 5,
        "only published articles are indexed: {job}"
    );
    assert_eq!(job["kind"], "index_rebuild");
    app.search_until("q=lucene", |v| total(v) == 1).await;
    let (_, verify) = app.get_json("/api/admin/index/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");

    // Sabotage: delete one segment file of the live index.
    let index_dir = app.data_dir.join("index");
    let victim = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("a postings file");
    std::fs::remove_file(&victim).unwrap();
    let (s, r) = app.get_json("/readyz").await;
    assert_eq!(s, 503, "{r}");
    assert_eq!(r["checks"]["search_index"]["status"], "failing", "{r}");
    assert!(
        r["checks"]["search_index"]["detail"]
            .as_str()
            .unwrap()
            .contains("rebuild"),
        "{r}"
    );

    let job = app.run_job("/api/admin/index/rebuild").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (s, r) = app.get_json("/readyz").await;
    assert_eq!(s, 200, "{r}");
    app.search_until("q=lucene", |v| total(v) == 1).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_index_is_rebuilt_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    app.create(json!({"title": "Persistent platypus", "body": "", "status": "published"}))
        .await;
    app.search_until("q=platypus", |v| total(v) == 1).await;
    app.stop().await.unwrap();
    std::fs::remove_dir_all(data.join("index")).unwrap();
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json("/api/search?q=platypus").await;
    assert_eq!(
        total(&v),
        1,
        "rebuilt from the database before serving: {v}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_index_of_another_analyzer_or_version_is_rebuilt_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Built with the simple analyzer: no stemming.
    let app = common::spawn_in(&data, |c| {
        c.search.analyzer = appliance::config::Analyzer::Simple
    })
    .await
    .unwrap();
    app.create(json!({"title": "Platypuses at dusk", "body": "", "status": "published"}))
        .await;
    app.search_until("q=platypuses", |v| total(v) == 1).await;
    let (_, v) = app.get_json("/api/search?q=platypus").await;
    assert_eq!(total(&v), 0, "the simple analyzer does not stem: {v}");
    app.stop().await.unwrap();

    // The English analyzer in the config: rebuilt, stemming, before serving.
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json("/api/search?q=platypus").await;
    assert_eq!(total(&v), 1, "rebuilt with the English analyzer: {v}");
    app.stop().await.unwrap();

    // An index left by an earlier version: title and body indexed, no `text` field.
    let dir = data.join("index");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    {
        use tantivy::schema::{
            FAST, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
            TextOptions,
        };
        let text = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("en_stem")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_stored();
        let mut b = Schema::builder();
        b.add_u64_field("id", INDEXED | STORED | FAST);
        b.add_text_field("slug", STRING | STORED);
        b.add_text_field("title", text.clone());
        b.add_text_field("body", text);
        b.add_text_field("category", STRING | STORED);
        b.add_text_field("tags", STRING | STORED);
        b.add_text_field("status", STRING | STORED);
        b.add_date_field("updated_at", INDEXED | STORED);
        let index = tantivy::Index::create_in_dir(&dir, b.build()).unwrap();
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        w.commit().unwrap();
    }
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json("/api/search?q=platypus+dusk").await;
    assert_eq!(total(&v), 1, "rebuilt with this version's schema: {v}");
    app.create(json!({"title": "Wombats", "body": "**Burrows** at [night](https://example.org/x)", "status": "published"}))
        .await;
    app.search_until("q=burrows", |v| total(v) == 1).await;
    app.stop().await.unwrap();

    // The index of the version before plain-text snippets: the Markdown source stored as
    // `body`. Rebuilt at start, and its snippets are plain text.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    {
        use tantivy::schema::{
            FAST, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
            TextOptions,
        };
        let indexed = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let mut b = Schema::builder();
        b.add_u64_field("id", INDEXED | STORED | FAST);
        b.add_text_field("slug", STRING | STORED);
        b.add_text_field("title", indexed.clone().set_stored());
        b.add_text_field("body", STORED);
        b.add_text_field("text", indexed);
        b.add_text_field("category", STRING | STORED);
        b.add_text_field("tags", STRING | STORED);
        b.add_text_field("status", STRING | STORED);
        b.add_date_field("updated_at", INDEXED | STORED);
        let index = tantivy::Index::create_in_dir(&dir, b.build()).unwrap();
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        w.commit().unwrap();
    }
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json("/api/search?q=burrows").await;
    assert_eq!(total(&v), 1, "rebuilt with this version's schema: {v}");
    let snippet = v["hits"][0]["snippet"].as_str().unwrap();
    assert_eq!(snippet, "<mark>Burrows</mark> at night", "{v}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_pass_with_more_text_than_one_indexing_group_indexes_every_article() {
    // 32 MiB of writer memory makes a group 4 MiB of text; these 10 articles (~5 MiB)
    // arrive in one bulk request, so one indexer pass hands them over in two groups.
    let app = common::spawn_app_with(|c| c.search.writer_memory_bytes = 32 * 1024 * 1024).await;
    let filler = "paragraph of filler words ".repeat(20_000);
    let items: Vec<Value> = (0..10)
        .map(|i| {
            json!({"title": format!("Long article {i}"),
                   "body": format!("{filler} marker{i}"), "status": "published"})
        })
        .collect();
    let (s, v) = app.post("/api/articles/bulk", Value::Array(items)).await;
    assert_eq!(s, 200, "{v}");
    app.search_until("q=filler", |v| total(v) == 10).await;
    for i in 0..10 {
        let v = app.search_until(&format!("q=marker{i}"), |_| true).await;
        assert_eq!(total(&v), 1, "article {i}: {v}");
    }
}

#[tokio::test]
async fn a_fresh_search_sees_every_write_acknowledged_before_it() {
    // A long commit interval: without `fresh` these searches would run before the
    // indexer's next pass and miss the writes.
    let app = common::spawn_app_with(|c| c.search.commit_interval_ms = 2_000).await;
    let fresh = |q: &str| format!("/api/search?q={q}&fresh=true");
    let a = app
        .create(json!({"title": "Numbat habits", "body": "termites", "status": "published"}))
        .await;
    let (s, v) = app.get_json(&fresh("numbat")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), [a["id"].as_i64().unwrap()], "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    // An edit and a delete are seen at once too.
    let (s, v) = app
        .patch(
            &format!("/api/articles/{}", a["id"]),
            json!({"title": "Bilby habits"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(total(&app.get_json(&fresh("bilby")).await.1), 1);
    assert_eq!(total(&app.get_json(&fresh("numbat")).await.1), 0);
    assert_eq!(app.delete(&format!("/api/articles/{}", a["id"])).await, 204);
    assert_eq!(total(&app.get_json(&fresh("bilby")).await.1), 0);

    let (s, v) = app.get_json("/api/search?q=bilby&fresh=maybe").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(field_names(&v), ["fresh"], "{v}");

    // An index that cannot commit (a backup holds the commit lock): the search does not
    // wait forever, and says its results may be stale.
    let lock = app.hold_index_commits().await;
    app.create(json!({"title": "Dunnart habits", "body": "insects", "status": "published"}))
        .await;
    let (s, v) = app.get_json(&fresh("dunnart")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(total(&v), 0, "{v}");
    let warning = v["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("not caught up"), "{v}");
    drop(lock);
    let (_, v) = app.get_json(&fresh("dunnart")).await;
    assert_eq!(total(&v), 1, "{v}");
    assert!(v.get("warnings").is_none(), "{v}");
    app.stop().await.unwrap();
}

/// Before: a rebuild ran inside its request, so on large data the request timed out
/// (408), the work was dropped half-way and nothing was recorded. Now it is a job that
/// outlives the request: held up here past the request timeout by the index-commit lock
/// (as a backup would hold it), it still finishes, swaps the index in, and is recorded
/// and audited; one rebuild runs at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_a_background_job_that_outlives_its_request() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = common::spawn_in(&data, |c| c.server.request_timeout_secs = 1)
        .await
        .unwrap();
    corpus(&app).await;
    app.search_until("q=lucene", |v| total(v) == 1).await;
    let lock = app.hold_index_commits().await;
    let started = Instant::now();
    let (s, v) = app.post("/api/admin/index/rebuild", json!({})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["job"]["id"].as_i64().unwrap();
    assert_eq!(v["job"]["state"], "running", "{v}");
    // Running, with its progress; a second rebuild is refused meanwhile.
    let (s, v) = app.post("/api/admin/index/rebuild", json!({})).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{v}"
    );
    // Past the request timeout, the job is still there and still running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = app.get_json(&format!("/api/admin/jobs/{id}")).await;
    assert_eq!(v["job"]["state"], "running", "{v}");
    assert_eq!(v["job"]["progress"]["step"], "indexing", "{v}");
    drop(lock);
    let job = app.wait_job(id).await;
    assert!(started.elapsed() > Duration::from_secs(1));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["documents"], 5, "{job}");
    assert!(!app.data_dir.join("index.rebuild").exists());
    let (_, verify) = app.get_json("/api/admin/index/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");
    let (_, list) = app.get_json("/api/admin/jobs?kind=index_rebuild").await;
    assert_eq!(list["jobs"][0]["id"], id, "{list}");
    let (s, _) = app.get_json("/api/admin/jobs?kind=nonsense").await;
    assert_eq!(s, 422);
    let (_, audit) = app.get_json("/api/admin/audit?action=index.rebuild").await;
    assert_eq!(audit["entries"][0]["outcome"], "success", "{audit}");
    assert_eq!(audit["entries"][0]["details"]["job"], id, "{audit}");
    app.stop().await.unwrap();

    // A job the server did not finish (it was killed) is interrupted at the next start.
    let conn = rusqlite::Connection::open(data.join("appliance.db")).unwrap();
    let stale = appliance::db::jobs::start(
        &conn,
        "index_rebuild",
        "someone",
        None,
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
    drop(conn);
    let app = common::spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json(&format!("/api/admin/jobs/{stale}")).await;
    assert_eq!(v["job"]["state"], "interrupted", "{v}");
    assert!(v["job"]["finished_at"].is_string(), "{v}");
    app.stop().await.unwrap();
}

/// Before: two people editing one article, the second save silently undid the first.
/// Now GET gives a version (ETag); a PATCH with If-Match applies only to that version,
/// else 412 with the article as it is now.
#[tokio::test]
async fn a_patch_with_if_match_never_overwrites_a_newer_version() {
    let app = spawn_app().await;
    let a = app
        .create(json!({"title": "Shared page", "body": "first text", "status": "published"}))
        .await;
    let path = format!("/api/articles/{}", a["id"]);
    let etag_of = |res: &reqwest::Response| res.headers()["etag"].to_str().unwrap().to_string();
    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);
    let v1 = etag_of(&res);
    assert!(v1.starts_with('"') && v1.ends_with('"'), "{v1}");
    // Unchanged: 304 for If-None-Match.
    let res = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &v1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let patch = |etag: Option<String>, body: Value| {
        let mut req = app.client.patch(app.url(&path)).json(&body);
        if let Some(e) = etag {
            req = req.header("if-match", e);
        }
        async move { req.send().await.unwrap() }
    };
    // Alice saves against the version she loaded: it applies, with a new version.
    let res = patch(Some(v1.clone()), json!({"body": "alice's text"})).await;
    assert_eq!(res.status(), 200);
    let v2 = etag_of(&res);
    assert_ne!(v1, v2);
    // Bob still holds v1: refused, told what it is now, nothing lost.
    let res = patch(Some(v1.clone()), json!({"title": "Bob's title"})).await;
    assert_eq!(res.status(), 412);
    assert_eq!(etag_of(&res), v2);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "precondition_failed", "{v}");
    assert_eq!(v["current"]["body"], "alice's text", "{v}");
    let (_, now) = app.get_json(&path).await;
    assert_eq!(
        (now["title"].as_str(), now["body"].as_str()),
        (Some("Shared page"), Some("alice's text"))
    );
    // Bob chooses to overwrite with the version he was shown; without If-Match the last
    // write wins as before.
    let res = patch(Some(v2.clone()), json!({"title": "Bob's title"})).await;
    assert_eq!(res.status(), 200);
    let res = patch(None, json!({"title": "No precondition"})).await;
    assert_eq!(res.status(), 200);
    let res = patch(Some("*".into()), json!({"title": "Any version"})).await;
    assert_eq!(res.status(), 200);
    app.stop().await.unwrap();
}

/// Before: once the Undo message was gone, a deleted article could not be found again
/// until cleanup purged it. The trash lists deleted articles with who deleted them and
/// when cleanup will purge them; restore takes one out.
#[tokio::test]
async fn the_trash_lists_deleted_articles_with_who_and_until_when_and_restore_empties_it() {
    let app = common::spawn_app_with(|c| c.cleanup.deleted_retention_days = 10).await;
    let a = app
        .create(json!({"title": "Gone soon", "body": "text", "status": "published"}))
        .await;
    let kept = app
        .create(json!({"title": "Still here", "body": "text"}))
        .await;
    assert_eq!(app.delete(&format!("/api/articles/{}", a["id"])).await, 204);
    let (s, v) = app.get_json("/api/articles?deleted=true").await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    let item = &items[0];
    assert_eq!(item["id"], a["id"]);
    assert!(item.get("body").is_none(), "{item}");
    assert_eq!(item["deleted_by"], "admin@test.example", "{item}");
    let deleted = appliance::clock::parse(item["deleted_at"].as_str().unwrap()).unwrap();
    let purge = appliance::clock::parse(item["purge_at"].as_str().unwrap()).unwrap();
    assert_eq!(purge - deleted, time::Duration::days(10), "{item}");
    // The live list does not show it; the trash does not show the live one.
    let (_, live) = app.get_json("/api/articles").await;
    assert!(live.to_string().contains("Still here") && !live.to_string().contains("Gone soon"));
    assert!(!v.to_string().contains(&format!("\"id\":{}", kept["id"])));
    // Readers (here anonymous) may not open the trash.
    let res = app
        .anon
        .get(app.url("/api/articles?deleted=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Restore takes it out of the trash, and both steps are audited.
    let (s, _) = app
        .post(&format!("/api/articles/{}/restore", a["id"]), json!({}))
        .await;
    assert_eq!(s, 200);
    let (_, v) = app.get_json("/api/articles?deleted=true").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
    let (_, audit) = app.get_json("/api/admin/audit?action=article.").await;
    let target = format!("article:{}", a["id"]);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == target.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["article.restore", "article.delete", "article.create"],
        "{audit}"
    );
    // A word finds its whole family (before: exact match only, "article" found nothing).
    let (_, word) = app.get_json("/api/admin/audit?action=article").await;
    assert_eq!(word["entries"], audit["entries"], "{word}");
    let (_, none) = app.get_json("/api/admin/audit?action=articl_").await;
    assert_eq!(
        none["entries"].as_array().unwrap().len(),
        0,
        "no wildcards: {none}"
    );
    app.stop().await.unwrap();
}

/// Who created and who changed an article is in the audit log: single creates and
/// edits one entry each (target `article:<id>`), bulk writes one entry per request (who,
/// how many, which ids), each in the write's own transaction.
#[tokio::test]
async fn article_writes_are_audited_bulk_once_per_request() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/articles/bulk"))
        .json(&json!([{"title": "One", "body": "b"}, {"title": "Two", "body": "b"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, v) = app.get_json("/api/admin/audit?action=article").await;
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["action"], "article.bulk");
    assert_eq!(entries[0]["actor"], "admin@test.example");
    assert_eq!(entries[0]["details"]["created"], 2, "{v}");
    let (s, a) = app
        .post("/api/articles", json!({"title": "Single", "body": "b"}))
        .await;
    assert_eq!(s, 201, "{a}");
    let (s, _) = app
        .patch(
            &format!("/api/articles/{}", a["id"]),
            json!({"title": "Single, edited"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = app.get_json("/api/admin/audit?action=article").await;
    let mine: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == format!("article:{}", a["id"]).as_str())
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        mine,
        [
            ("article.update", "admin@test.example"),
            ("article.create", "admin@test.example")
        ],
        "{v}"
    );
    app.stop().await.unwrap();
}

/// The upload import: the CLI's import over HTTP. Good lines land (and are searchable),
/// each bad line is named by its number and left out, a second run updates instead of
/// duplicating, abort keeps what came before, and an empty file is refused.
#[tokio::test]
async fn an_uploaded_json_lines_file_is_imported_line_by_line_with_a_report() {
    let app = spawn_app().await;
    let upload = |q: &'static str, body: &'static str| {
        let req = app
            .client
            .post(app.url(&format!("/api/articles/import{q}")))
            .header("content-type", "application/x-ndjson")
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let s = res.status().as_u16();
            (s, res.json::<Value>().await.unwrap())
        }
    };
    let file = concat!(
        "{\"title\":\"Imported kettles\",\"body\":\"About **kettles**\",\"external_id\":\"k1\",\"status\":\"published\",\"id\":99}\n",
        "{\"title\":\"\",\"body\":\"no title\"}\n",
        "not json at all\n",
        "\n",
        "{\"title\":\"Imported teapots\",\"body\":\"teapots\",\"slug\":\"kettles-two\"}\n",
        "{\"title\":\"Same slug\",\"body\":\"x\",\"slug\":\"kettles-two\"}\n",
    );
    let (s, v) = upload("", file).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["bad"].as_u64()
        ),
        (Some(2), Some(0), Some(3)),
        "{v}"
    );
    let lines: Vec<u64> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 6], "{v}");
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("title"),
        "{v}"
    );
    assert!(
        v["problems"][2]["message"]
            .as_str()
            .unwrap()
            .contains("kettles-two"),
        "{v}"
    );
    let (_, found) = app.get_json("/api/search?q=kettles&fresh=true").await;
    assert_eq!(found["total"], 1, "{found}");

    // The same file again: the external_id line is already as given (nothing written),
    // nothing is duplicated.
    let (s, v) = upload("?on_error=skip", file).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["unchanged"].as_u64(),
            v["bad"].as_u64()
        ),
        (Some(0), Some(0), Some(1), Some(4)),
        "{v}"
    );
    let (_, page) = app.get_json("/api/articles?count=true&limit=1").await;
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Abort: line 1 is imported, it stops at line 2, line 3 is never read.
    let (s, v) = upload(
        "?on_error=abort",
        "{\"title\":\"Before\",\"body\":\"\"}\n{\"title\":5}\n{\"title\":\"After\",\"body\":\"\"}\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["aborted_at"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    let (_, page) = app.get_json("/api/articles?count=true").await;
    assert_eq!(page["total"], 3, "{page}");

    let (s, v) = upload("", "\n  \n").await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("empty"),
        "{v}"
    );
    let (s, v) = upload("?on_error=maybe", "{}").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["fields"][0]["field"], "on_error", "{v}");

    // count with filters counts what the filter matches; a bad value is named.
    let (_, page) = app
        .get_json("/api/articles?count=true&status=published")
        .await;
    assert_eq!(page["total"], 1, "{page}");
    let (s, v) = app.get_json("/api/articles?count=sometimes").await;
    assert_eq!(s, 422, "{v}");
}

/// Search matches and shows the text a reader sees, not the Markdown syntax: snippets
/// carry no `##`, `**` or table pipes, and a link's target is not searchable text.
#[tokio::test]
async fn snippets_and_matches_come_from_the_text_as_read_not_the_markdown() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/api/articles",
            json!({"title": "Kettle care", "status": "published",
                   "body": "## Descaling\n\n**Descale** the kettle with [vinegar](https://example.org/zanzibar-recipe).\n\n| Step | Minutes |\n|---|---|\n| soak | 30 |\n"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, r) = app.get_json("/api/search?q=descale&fresh=true").await;
    assert_eq!(r["total"], 1, "{r}");
    let snippet = r["hits"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("<mark>Descale</mark> the kettle with vinegar"),
        "{snippet}"
    );
    for syntax in ["##", "**", "|", "](", "https://"] {
        assert!(!snippet.contains(syntax), "{syntax} in {snippet}");
    }
    let (_, r) = app.get_json("/api/search?q=soak").await;
    assert_eq!(r["total"], 1, "table cells are text: {r}");
    let (_, r) = app.get_json("/api/search?q=zanzibar").await;
    assert_eq!(
        r["total"], 0,
        "a link target is not text a reader sees: {r}"
    );
}
