//! Error tracking: a 5xx from a sabotaged database, a panic on another thread and a
//! failed backup are recorded with category, severity, component, operation and
//! request id, grouped by fingerprint, listed by the API and the CLI with personal data
//! removed; and with `sentry.dsn` pointing at a local HTTP server, the real binary sends
//! the same events as Sentry envelopes with environment, release and tags, and without
//! email addresses or tokens.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cli, cli_admin_token, poll, start_server_env, stderr, stdout};
use serde_json::Value;

async fn groups(app: &common::TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app.get_json(&format!("/api/admin/errors{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["groups"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexpected_errors_are_recorded_grouped_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let app = common::spawn_in(&tmp.path().join("data"), |_| {})
        .await
        .unwrap();
    assert!(groups(&app, "").await.is_empty());

    // Sabotage: the articles table disappears under the running server.
    rusqlite::Connection::open(app.db_path())
        .unwrap()
        .execute_batch("DROP TABLE article_tags; DROP TABLE articles;")
        .or_else(|_| {
            rusqlite::Connection::open(app.db_path())
                .unwrap()
                .execute_batch("DROP TABLE articles;")
        })
        .unwrap();
    let mut request_ids = Vec::new();
    for _ in 0..2 {
        let res = app.get("/api/articles").await;
        assert_eq!(res.status(), 500);
        request_ids.push(res.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    // A panic on some other thread of the process, with personal data in it.
    let _ = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| panic!("boom while mailing alice@example.org"))
        .unwrap()
        .join();

    let found = poll(Duration::from_secs(10), || {
        let g = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(groups(&app, ""))
        });
        (g.len() >= 2).then_some(g)
    })
    .expect("both errors stored");
    let http = found.iter().find(|g| g["component"] == "http").unwrap();
    assert_eq!(http["category"], "database", "{http}");
    assert_eq!(http["severity"], "high");
    assert_eq!(http["operation"], "GET /api/articles");
    assert_eq!(http["count"], 2, "grouped by fingerprint: {http}");
    assert_eq!(http["last_request_id"], request_ids[1].as_str());
    assert!(
        http["message"].as_str().unwrap().contains("no such table"),
        "{http}"
    );
    let panic = found.iter().find(|g| g["component"] == "panic").unwrap();
    assert_eq!(panic["severity"], "critical");
    assert_eq!(panic["message"], "boom while mailing [email]");
    assert!(
        panic["operation"]
            .as_str()
            .unwrap()
            .contains("thread worker at tests/errors.rs"),
        "{panic}"
    );

    // Filters.
    assert_eq!(groups(&app, "?severity=critical").await.len(), 1);
    assert_eq!(groups(&app, "?category=database").await.len(), 1);
    let (s, v) = app.get_json("/api/admin/errors?severity=dire").await;
    assert_eq!(s, 422);
    assert_eq!(v["error"]["fields"][0]["field"], "severity");
    let (_, v) = app.get_json("/api/admin/errors").await;
    assert!(v["last_minute"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["dropped"], 0);

    // The metric counts them by category and severity.
    let scrape = reqwest::get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("appliance_errors_total{category=\"database\",severity=\"high\"}"),
        "{scrape}"
    );
    app.stop().await.unwrap();

    // The CLI reads the same groups.
    let root = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        cli(&root)
            .args(["errors", "list", "--severity", "critical"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("panic") && text.contains("[email]"), "{text}");
    assert!(!text.contains("alice@"), "{text}");
}

/// A one-thread HTTP server that answers 200 to everything and keeps request bodies.
fn sentry_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let body = common::read_request_body(&s);
            keep.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
        }
    });
    (addr, bodies)
}

#[test]
fn sentry_gets_tagged_events_without_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let token = cli_admin_token(tmp.path());
    let (addr, bodies) = sentry_receiver();
    // A backups "directory" whose parent is a file: every backup fails with a message
    // naming the path, which holds an email address and a token-shaped name.
    let trap = tmp.path().join("alice@example.org");
    std::fs::write(&trap, "not a directory").unwrap();
    let leaked_token = "apl_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef0123";
    let backups = trap.join(leaked_token);
    let dsn = format!("http://publickey@{addr}/42");
    let mut server = start_server_env(
        tmp.path(),
        &[
            ("APPLIANCE__SENTRY__DSN", &dsn),
            ("APPLIANCE__SENTRY__ENVIRONMENT", "staging"),
            ("APPLIANCE__BACKUP__DIR", backups.to_str().unwrap()),
            ("APPLIANCE__BACKUP__SCHEDULE", ""),
        ],
    );
    let res = reqwest::blocking_post(&server.addr, "/api/admin/backups", &token);
    assert_eq!(res, 500);
    let envelope = poll(Duration::from_secs(20), || {
        bodies
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.contains("\"component\":\"http\""))
            .cloned()
    })
    .expect("an envelope arrived at the DSN endpoint");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    common::exit_within(&mut server.child, Duration::from_secs(60));
    // An envelope: a header line, an item header, the event JSON.
    let event: Value = envelope
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("event_id").is_some() && v.get("tags").is_some())
        .expect("an event item");
    assert_eq!(event["environment"], "staging", "{event}");
    assert_eq!(
        event["release"],
        format!("appliance@{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(event["tags"]["category"], "system", "{event}");
    assert_eq!(event["tags"]["severity"], "high");
    assert_eq!(event["tags"]["operation"], "POST /api/admin/backups");
    assert!(event["tags"]["request_id"].is_string());
    let message = event["message"].to_string();
    assert!(
        message.contains("[email]") && message.contains("[token]"),
        "{message}"
    );
    for body in bodies.lock().unwrap().iter() {
        assert!(!body.contains("alice@example.org"), "email leaked: {body}");
        assert!(!body.contains(leaked_token), "token leaked: {body}");
        assert!(!body.contains(&token), "API token leaked: {body}");
    }
}

/// Tiny blocking HTTP client for the test above (no async runtime in a #[test]).
mod reqwest {
    pub use ::reqwest::*;
    pub fn blocking_post(addr: &str, path: &str, token: &str) -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}
