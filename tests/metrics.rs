//! Prometheus metrics on their own listener: what a scrape holds after real traffic,
//! a backup and an error, checked by `promtool check metrics` (Debian's prometheus
//! package; `scripts/test.sh` provides it and sets PROMTOOL).

mod common;

use std::collections::HashMap;

use common::spawn_app;
use serde_json::json;

fn promtool() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

/// Sample values by their full name with labels, e.g. `appliance_db_readers`.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn scrape_has_the_promised_metrics_and_passes_promtool() {
    let app = spawn_app().await;
    let metrics = app.metrics_addr.expect("metrics enabled by default");
    assert_ne!(metrics.port(), app.addr.port(), "its own listener");
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the API port"
    );

    let (s, v) = app
        .post(
            "/api/articles",
            json!({"title": "Metrics", "body": "counted", "status": "published"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(app.get("/api/articles/999999").await.status(), 404);
    let (s, _) = app.post("/api/admin/backups", json!({})).await;
    assert_eq!(s, 202);
    let url = format!("http://{metrics}/metrics");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let res = reqwest::get(&url).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = res.text().await.unwrap();
        let s = samples(&text);
        if s.get("appliance_backup_last_run_ok") == Some(&1.0)
            && s.get("appliance_search_outbox_pending") == Some(&0.0)
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let s = samples(&text);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert_eq!(
        get(r#"appliance_http_requests_total{method="POST",route="/api/articles",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        get(
            r#"appliance_http_requests_total{method="GET",route="/api/articles/{key}",status="4xx"}"#
        ),
        1.0
    );
    assert!(
        get(
            r#"appliance_http_request_duration_seconds_count{method="POST",route="/api/articles",status="2xx"}"#
        ) >= 1.0
    );
    assert!(get("appliance_db_write_wait_seconds_count") >= 1.0);
    assert!(get("appliance_db_write_transaction_seconds_count") >= 1.0);
    assert!(get("appliance_search_commit_seconds_count") >= 1.0);
    assert!(get("appliance_db_size_bytes") > 0.0);
    assert!(get("appliance_db_readers") >= 1.0);
    assert_eq!(get("appliance_search_documents"), 1.0);
    assert!(get("appliance_backup_last_success_timestamp_seconds") > 1.7e9);
    assert!(get("appliance_backup_last_size_bytes") > 0.0);
    assert!(get("appliance_process_resident_memory_bytes") > 1e6);
    assert!(get("appliance_process_open_fds") > 3.0);
    assert!(get("appliance_disk_free_bytes") > 0.0);
    assert_eq!(
        get(&format!(
            r#"appliance_build_info{{version="{}"}}"#,
            appliance::VERSION
        )),
        1.0
    );
    assert!(
        text.contains("# HELP appliance_http_requests_total"),
        "{text}"
    );

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} check metrics < {}",
            promtool(),
            file.path().display()
        ))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed (is promtool installed? scripts/test.sh provides it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_can_be_disabled() {
    let app = common::spawn_app_with(|c| c.metrics.enabled = false).await;
    assert!(app.metrics_addr.is_none());
    assert_eq!(app.get("/health").await.status(), 200);
    app.stop().await.unwrap();
}
