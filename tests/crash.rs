//! Crash safety: the real server as a child process takes bulk and single inserts from
//! concurrent clients, is killed with SIGKILL mid-stream, and restarted. Every article
//! the server acknowledged must be in the database and searchable, and `appliance index
//! verify` must pass.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cli, cli_admin_token, client_with_token, start_server_env};
use serde_json::{Value, json};

const WORD: &str = "crashword";

async fn load(base: String, token: String, worker: usize, acked: Arc<Mutex<BTreeSet<i64>>>) {
    let client = client_with_token(&token);
    for round in 0.. {
        let result = if round % 2 == 0 {
            let items: Vec<Value> = (0..50)
                .map(|i| json!({"title": format!("{WORD} w{worker} r{round} i{i}"), "body": "bulk body", "status": "published"}))
                .collect();
            client
                .post(format!("{base}/api/articles/bulk"))
                .json(&items)
                .send()
                .await
        } else {
            client
                .post(format!("{base}/api/articles"))
                .json(&json!({"title": format!("{WORD} single w{worker} r{round}"), "body": "single", "status": "published"}))
                .send()
                .await
        };
        // The server died: stop; anything not acknowledged may or may not be there.
        let Ok(res) = result else { return };
        let status = res.status().as_u16();
        let Ok(v) = res.json::<Value>().await else {
            return;
        };
        let mut acked = acked.lock().unwrap();
        match status {
            200 => {
                for item in v["items"].as_array().unwrap() {
                    acked.insert(item["id"].as_i64().unwrap());
                }
            }
            201 => {
                acked.insert(v["id"].as_i64().unwrap());
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_article_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let token = cli_admin_token(dir.path());
    // A load test: the per-IP rate limits would answer 429 long before the crash.
    let mut server = start_server_env(dir.path(), &[("APPLIANCE__RATE_LIMIT__ENABLED", "false")]);
    let base = format!("http://{}", server.addr);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(load(base.clone(), token.clone(), w, acked.clone())))
        .collect();

    // Let a good amount through, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 2000 {
        assert!(
            Instant::now() < deadline,
            "load never reached 2000 articles"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked: BTreeSet<i64> = acked.lock().unwrap().clone();

    // Restart on the same directory: the lock was released by the kernel.
    let mut server = start_server_env(dir.path(), &[("APPLIANCE__RATE_LIMIT__ENABLED", "false")]);
    let base = format!("http://{}", server.addr);
    let client = client_with_token(&token);

    // Every acknowledged article is in the database.
    let conn = rusqlite::Connection::open(dir.path().join("data/appliance.db")).unwrap();
    let stored: BTreeSet<i64> = conn
        .prepare("SELECT id FROM articles")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged articles lost: {lost:?}",
        lost.len()
    );

    // And searchable: the index catches up with everything stored (replay from outbox).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{base}/api/search?q={WORD}&limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["total"].as_u64() == Some(stored.len() as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index never caught up: {v} vs {}",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few acknowledged ids, fetched one by one through the API.
    for id in acked.iter().step_by(97) {
        let res = client
            .get(format!("{base}/api/articles/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "article {id}");
    }

    // Stop cleanly and verify the index against the database with the CLI.
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exit = common::poll(Duration::from_secs(30), || {
        server.child.try_wait().ok().flatten()
    })
    .expect("server stops");
    assert!(exit.success());
    let out = cli(dir.path()).args(["index", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert!(common::stdout(&out).contains("consistent"));
    eprintln!(
        "crash test: {} acknowledged, {} stored after kill -9",
        acked.len(),
        stored.len()
    );
}
