//! The systemd notify protocol against the real binary: a Unix datagram socket stands in
//! for systemd (`NOTIFY_SOCKET`), with `WATCHDOG_USEC` set as systemd sets it. READY once
//! up, STATUS that follows health, WATCHDOG pings that stop when the index is made
//! unusable (sabotage), STOPPING on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::cli;

/// Every datagram that arrives within `window`.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// Wait (with a deadline) for a datagram containing `needle`; returns what came before it too.
fn wait_for(sock: &UnixDatagram, needle: &str, deadline: Duration) -> Vec<String> {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {needle:?} within {deadline:?}; got {seen:?}"
        );
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.contains(needle);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
}

#[test]
fn ready_status_watchdog_withheld_when_stuck_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let out = cli(tmp.path()).args(["migrate", "run"]).output().unwrap();
    assert!(out.status.success());
    let token = common::cli_admin_token(tmp.path());
    // The packaged unit's exact ExecStart, with the packaged config; only the data
    // directory and the ports are moved (environment overrides) into the test's own.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit =
        std::fs::read_to_string(manifest.join("packaging/debian/appliance.service")).unwrap();
    let exec_start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart");
    let mut words = exec_start.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/appliance"));
    let packaged_config = manifest.join("packaging/appliance.toml");
    let args: Vec<&str> = words
        .map(|w| {
            if w == "/etc/appliance/appliance.toml" {
                packaged_config.to_str().unwrap()
            } else {
                w
            }
        })
        .collect();
    assert_eq!(
        args,
        ["--config", packaged_config.to_str().unwrap(), "serve"]
    );
    let data = tmp.path().join("data");
    // 400 ms watchdog: a ping every 200 ms.
    let mut server = common::start_server_args(
        tmp.path(),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("APPLIANCE__DATA_DIR", data.to_str().unwrap()),
            ("APPLIANCE__METRICS__LISTEN", "127.0.0.1:0"),
        ],
        &args,
    );

    let first = wait_for(&sock, "READY=1", Duration::from_secs(20));
    let ready = first.last().unwrap();
    assert!(
        ready.contains("STATUS=ready on http://127.0.0.1:"),
        "{ready}"
    );
    let msgs = collect(&sock, Duration::from_millis(1500));
    let pings = msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 4, "a ping every ~200 ms: {msgs:?}");
    assert!(
        msgs.iter().any(|m| m == "STATUS=ready\n"),
        "the health summary follows READY: {msgs:?}"
    );

    // Some articles, imported beside the server, which indexes them into segment files.
    let lines: String = (0..5)
        .map(|i| format!("{{\"title\": \"t{i}\", \"body\": \"b\", \"status\": \"published\"}}\n"))
        .collect();
    std::fs::write(tmp.path().join("a.jsonl"), lines).unwrap();
    let out = cli(tmp.path())
        .args(["articles", "import", "a.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let indexed = common::poll(Duration::from_secs(20), || {
        let (_, body) = common::http_get_auth(&server.addr, "/api/admin/index", Some(&token))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["documents"] == 5 && v["outbox_pending"] == 0).then_some(())
    });
    assert!(indexed.is_some(), "the server indexed the import");
    // Sabotage: the index loses its segment files, which a restart would rebuild.
    for entry in std::fs::read_dir(tmp.path().join("data/index")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() != "meta.json" && !p.to_string_lossy().contains("lock") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let seen = wait_for(&sock, "STATUS=failing", Duration::from_secs(10));
    let status = seen.last().unwrap();
    assert!(status.contains("search_index"), "{status}");
    let after = collect(&sock, Duration::from_millis(1500));
    assert!(
        after.iter().all(|m| !m.contains("WATCHDOG=1")),
        "no pings while the index is unusable: {after:?}"
    );

    let ok = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let seen = wait_for(&sock, "STOPPING=1", Duration::from_secs(10));
    assert!(seen.last().unwrap().contains("STATUS=stopping"), "{seen:?}");
    assert!(common::exit_within(&mut server.child, Duration::from_secs(60)).success());
}
