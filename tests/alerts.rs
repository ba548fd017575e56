//! Alerts: a filled search outbox that the indexer cannot commit (the index-commit lock
//! is held, as by a backup) makes the index-lag alert fire (API, /readyz, metric) and
//! resolve when drained; both transitions reach a webhook receiver that fails, then
//! hangs past the timeout, then recovers — each exactly once. A dead receiver opens the
//! circuit breaker while the API keeps answering.

mod common;

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestApp, poll, spawn_app_with};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Fail,
    Hang,
    Ok,
}

struct Receiver {
    url: String,
    /// Bodies answered 200 in time.
    accepted: Arc<Mutex<Vec<Value>>>,
    /// How many requests came in at all.
    seen: Arc<Mutex<usize>>,
}

/// A webhook receiver that follows `plan` per request (then answers 200).
fn receiver(plan: Vec<Mode>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(0));
    let (acc, sn) = (accepted.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mode = plan.lock().unwrap().pop_front().unwrap_or(Mode::Ok);
            let (acc, sn) = (acc.clone(), sn.clone());
            std::thread::spawn(move || {
                let body = common::read_request_body(&s);
                *sn.lock().unwrap() += 1;
                match mode {
                    Mode::Fail => {
                        let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                    // Past the sender's timeout: it must count this as failed and retry.
                    Mode::Hang => std::thread::sleep(Duration::from_secs(3)),
                    Mode::Ok => {
                        acc.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                }
            });
        }
    });
    Receiver {
        url,
        accepted,
        seen,
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Fill the outbox with changes "from long ago" for articles that do not exist, in one
/// transaction. Hold `TestApp::hold_index_commits` first, or the indexer may drain them before
/// the alert is evaluated.
fn fill_outbox(app: &TestApp, n: usize) {
    let mut c = rusqlite::Connection::open(app.db_path()).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = c.transaction().unwrap();
    for i in 0..n {
        tx.execute(
            "INSERT INTO search_outbox (article_id, created_at) VALUES (?1, '2000-01-01T00:00:00.000Z')",
            [900_000 + i as i64],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn active(app: &TestApp) -> Value {
    block(app.get_json("/api/admin/alerts")).1
}

fn firing(v: &Value, name: &str) -> bool {
    v["active"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lag_fires_and_resolves_and_a_flaky_webhook_gets_each_transition_once() {
    let hook = receiver(vec![Mode::Fail, Mode::Fail, Mode::Hang]);
    let app = spawn_app_with(|c| {
        c.alerts.interval_ms = 100;
        c.alerts.index_lag_secs = 1;
        c.alerts.webhook_url = Some(appliance::config::Secret::new(hook.url.clone()));
        c.alerts.webhook_timeout_ms = 500;
        c.alerts.webhook_backoff_ms = 20;
        c.alerts.breaker_failures = 100;
        c.alerts.webhook_max_attempts = 50;
    })
    .await;
    assert!(!firing(&active(&app), "index_lag"));

    let commits = app.hold_index_commits().await;
    fill_outbox(&app, 2000);
    let v = poll(Duration::from_secs(20), || {
        let v = active(&app);
        firing(&v, "index_lag").then_some(v)
    })
    .expect("the index-lag alert fires");
    let lag = v["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "index_lag")
        .unwrap()
        .clone();
    assert_eq!(lag["severity"], "warning");
    assert_eq!(lag["threshold"], 1.0);
    assert!(lag["value"].as_f64().unwrap() > 1.0, "{lag}");
    let (_, ready) = app.get_json("/readyz").await;
    assert!(
        ready["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "index_lag"),
        "{ready}"
    );
    let scrape = reqwest::get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("appliance_alerts_firing{alert=\"index_lag\"} 1"),
        "{scrape}"
    );
    let lag_metric: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("appliance_search_outbox_lag_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the lag metric");
    assert!(lag_metric > 1.0, "outbox lag metric {lag_metric}");

    // Let the indexer drain the outbox: the alert resolves.
    drop(commits);
    poll(Duration::from_secs(20), || {
        (!firing(&active(&app), "index_lag")).then_some(())
    })
    .expect("the alert resolves");

    // The receiver failed twice, hung once, then recovered: both transitions arrived,
    // each exactly once, in order.
    let got = poll(Duration::from_secs(30), || {
        let acc = hook.accepted.lock().unwrap();
        let mine: Vec<Value> = acc
            .iter()
            .filter(|b| b["alert"]["name"] == "index_lag")
            .cloned()
            .collect();
        (mine.len() >= 2).then_some(mine)
    })
    .expect("firing and resolved delivered");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[1]["status"], "resolved");
    assert_ne!(got[0]["id"], got[1]["id"]);
    assert!(
        got[0]["alert"]["summary"]
            .as_str()
            .unwrap()
            .contains("search index")
    );
    assert!(
        *hook.seen.lock().unwrap() >= 5,
        "two failures and a hang were retried"
    );
    let w = active(&app)["webhook"].clone();
    assert!(w["failed_attempts"].as_u64().unwrap() >= 3, "{w}");
    assert_eq!(w["given_up"], 0, "{w}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_opens_the_breaker_and_the_api_keeps_answering() {
    // A port nobody listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let app = spawn_app_with(|c| {
        c.alerts.interval_ms = 100;
        c.alerts.index_lag_secs = 1;
        c.alerts.webhook_url = Some(appliance::config::Secret::new(dead));
        c.alerts.webhook_backoff_ms = 10;
        c.alerts.breaker_failures = 3;
        c.alerts.breaker_open_secs = 600;
        c.alerts.webhook_max_attempts = 100;
    })
    .await;
    let commits = app.hold_index_commits().await;
    fill_outbox(&app, 2000);
    let w = poll(Duration::from_secs(20), || {
        let w = active(&app)["webhook"].clone();
        (w["breaker"] == "open").then_some(w)
    })
    .expect("the breaker opens");
    assert!(w["failed_attempts"].as_u64().unwrap() >= 3, "{w}");

    // The API does not wait for the webhook: every request is answered well inside a
    // client timeout far shorter than the breaker's cool-down.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", app.token).parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    for i in 0..20 {
        let res = client
            .post(app.url("/api/articles"))
            .json(&json!({"title": format!("during the outage {i}"), "body": "b"}))
            .send()
            .await
            .expect("answered while the webhook is dead");
        assert_eq!(res.status(), 201);
    }
    assert_eq!(active(&app)["webhook"]["breaker"], "open");
    drop(commits);
    app.stop().await.unwrap();
}
