//! wrk (Debian's `wrk` 4.1; `scripts/bench.sh` installs it) as a second, independent
//! load generator: prepared POST bodies sent at a fixed concurrency on keep-alive
//! connections by a Lua script, stopping after a given number of answers. Its own
//! latency histogram gives p50, p99 and the maximum.

use std::io::Write;
use std::process::Command;

use bytes::Bytes;

/// What wrk measured.
pub struct WrkResult {
    pub requests: u64,
    pub secs: f64,
    /// Answers that were not 2xx or 3xx.
    pub bad_status: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// `BENCH_WRK`, else `wrk` on the PATH; None when there is neither (or it is "off").
pub fn binary() -> Option<String> {
    match std::env::var("BENCH_WRK") {
        Ok(v) if v == "off" => None,
        Ok(v) => Some(v),
        Err(_) => Command::new("wrk")
            .arg("--version")
            .output()
            .ok()
            .map(|_| "wrk".to_string()),
    }
}

const SCRIPT: &str = r#"
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local target = tonumber(os.getenv("WRK_COUNT"))
local path = os.getenv("WRK_PATH")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")}
local sent, answered = 0, 0
request = function()
  sent = sent + 1
  return wrk.format("POST", path, headers, bodies[((sent - 1) % #bodies) + 1])
end
response = function(status, hdrs, body)
  answered = answered + 1
  if answered == target then
    -- wrk runs for its whole -d even when a thread stops: tell the caller, which
    -- interrupts it (SIGINT makes wrk print its summary at once).
    wrk.thread:stop()
    local f = io.open(os.getenv("WRK_DONE"), "w")
    f:write("done")
    f:close()
  end
end
done = function(summary, latency, requests)
  io.write(string.format("WRK_RESULT %d %d %d %.0f %.0f %.0f\n", summary.requests, summary.duration,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

/// POST `bodies` (one JSON document each, the first `count` of them and a few spare
/// for the requests in flight when it stops) to `base` + `path` with `wrk -t1
/// -c<connections>`, until `count` answers.
pub fn post(
    bin: &str,
    base: &str,
    path: &str,
    token: &str,
    bodies: &[Bytes],
    count: usize,
    connections: usize,
) -> WrkResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("post.lua");
    std::fs::write(&script, SCRIPT).expect("write the script");
    let file = dir.path().join("bodies.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("bodies"));
    for b in bodies.iter().take(count + connections + 8) {
        out.write_all(b).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let done = dir.path().join("done");
    let child = Command::new(bin)
        .args([
            "-t1",
            &format!("-c{connections}"),
            "-d600s",
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&script)
        .arg(base)
        .env("WRK_BODIES", &file)
        .env("WRK_COUNT", count.to_string())
        .env("WRK_PATH", path)
        .env("WRK_TOKEN", token)
        .env("WRK_DONE", &done)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wrk");
    let started = std::time::Instant::now();
    while !done.exists() {
        assert!(
            started.elapsed().as_secs() < 590,
            "wrk never reached {count} answers"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wrk output");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "wrk failed: {text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .unwrap_or_else(|| panic!("no result from wrk: {text}"));
    let n: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    assert_eq!(n.len(), 6, "{line}");
    WrkResult {
        requests: n[0] as u64,
        secs: n[1] / 1e6,
        bad_status: n[2] as u64,
        p50_ms: n[3] / 1000.0,
        p99_ms: n[4] / 1000.0,
        max_ms: n[5] / 1000.0,
    }
}
