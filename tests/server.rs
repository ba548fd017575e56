//! The server in-process on 127.0.0.1:0: health endpoints, the JSON error shape, request
//! ids, body limits, the data-directory lock, graceful shutdown, and sabotage of the
//! database under a running server.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use common::{spawn_app, spawn_app_with, spawn_in, wal_size};
use serde_json::Value;

#[tokio::test]
async fn health_reports_status_version_and_uptime() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], appliance::VERSION);
    assert!(body["uptime_secs"].is_u64(), "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_is_ok_with_every_deep_check() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    for check in ["database_read", "database_write", "migrations", "disk"] {
        let c = &body["checks"][check];
        assert_eq!(c["status"], "ok", "{check}: {body}");
        assert!(c["duration_ms"].is_number(), "{check}: {body}");
        assert!(
            c["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{check}: {body}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_fails_with_503_when_the_database_file_is_destroyed() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Everything into the main file first (the real checkpoint API), so that the
    // sabotage below hits data rather than a file whose pages all sit in the WAL.
    app.state()
        .db()
        .checkpoint(appliance::db::Checkpoint::Truncate)
        .await
        .unwrap();
    // Sabotage: overwrite the whole database file with garbage under the running server.
    let len = std::fs::metadata(app.db_path()).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(app.db_path())
        .unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&vec![0xA5u8; len as usize]).unwrap();
    f.sync_all().unwrap();

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failing", "{body}");
    assert_eq!(
        body["checks"]["database_read"]["status"], "failing",
        "{body}"
    );
    let detail = body["checks"]["database_read"]["detail"].as_str().unwrap();
    assert!(detail.contains("corrupt"), "{detail}");
    // Liveness stays cheap and up: systemd decides on the deep checks.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn readyz_fails_when_the_database_file_is_deleted() {
    let app = spawn_app().await;
    std::fs::remove_file(app.db_path()).unwrap();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let detail = body["checks"]["database_read"]["detail"].as_str().unwrap();
    assert!(detail.contains("deleted"), "{detail}");
}

#[tokio::test]
async fn readyz_reports_degraded_then_failing_on_low_disk() {
    let app = spawn_app_with(|c| {
        c.health.min_free_disk_bytes = 1;
        c.health.warn_free_disk_bytes = u64::MAX;
    })
    .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "degraded is still ready: {body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["disk"]["status"], "degraded");
    app.stop().await.unwrap();

    let app = spawn_app_with(|c| {
        c.health.min_free_disk_bytes = u64::MAX;
        c.health.warn_free_disk_bytes = u64::MAX;
    })
    .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["disk"]["status"], "failing");
    assert!(
        body["checks"]["disk"]["detail"]
            .as_str()
            .unwrap()
            .contains("min_free_disk_bytes"),
        "{body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_get_the_json_error_shape_with_the_request_id() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/does-not-exist"))
        .header("x-request-id", "test-id-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["x-request-id"], "test-id-123");
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "test-id-123");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/does-not-exist")
    );

    // Without one, an id is generated and echoed.
    let res = app.get("/health").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "uuid: {id}");

    let res = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_json() {
    let app = spawn_app_with(|c| c.server.body_limit_bytes = 4096).await;
    let res = app
        .client
        .post(app.url("/api/anything"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused_naming_dir_and_pid() {
    let app = spawn_app().await;
    let err = spawn_in(&app.data_dir, |_| {})
        .await
        .err()
        .expect("second server must be refused")
        .to_string();
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert!(err.contains(&app.data_dir.display().to_string()), "{err}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_leaves_a_clean_database_and_frees_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    // Some writes so the WAL has frames.
    for i in 0..50 {
        app.state_write(i).await;
    }
    assert!(wal_size(&app.db_path()) > 0, "writes went to the WAL");
    let db_path = app.db_path();
    app.stop().await.unwrap();

    assert_eq!(wal_size(&db_path), 0, "WAL is checkpointed and truncated");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM app_meta WHERE key LIKE 'test-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 50, "every committed write is in the database file");
    drop(conn);

    // The lock is released: the next server starts on the same directory.
    let again = spawn_in(&data, |_| {}).await.unwrap();
    assert_eq!(again.get("/readyz").await.status(), 200);
    again.stop().await.unwrap();
}

#[tokio::test]
async fn in_flight_requests_finish_during_the_drain() {
    let app = spawn_app_with(|c| c.health.check_timeout_ms = 5_000).await;
    // Hold the writer so /readyz's writer probe waits; then ask for shutdown while the
    // request is in flight, release the writer, and expect the answer to arrive.
    let db = app.state().db().clone();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = tokio::spawn(async move {
        db.with_writer(move |_c| {
            let _ = release_rx.recv();
            Ok::<_, appliance::db::DbError>(())
        })
        .await
    });
    let addr = app.addr;
    let url = app.url("/readyz");
    let client = app.client.clone();
    let request = tokio::spawn(async move { client.get(url).send().await });
    // Wait until the request is really in flight (its writer probe is queued).
    let state = app.state().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.in_flight() == 0 {
        assert!(Instant::now() < deadline, "request never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(state);
    let stopping = tokio::spawn(app.stop());
    // Shutdown has begun: new connections are refused while the old one drains.
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = reqwest::Client::new();
    loop {
        if fresh
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err()
        {
            break;
        }
        assert!(Instant::now() < deadline, "listener never closed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release_tx.send(()).unwrap();
    let res = request
        .await
        .unwrap()
        .expect("in-flight request is answered");
    assert_eq!(res.status(), 200);
    holder.await.unwrap().unwrap();
    stopping.await.unwrap().unwrap();
}
