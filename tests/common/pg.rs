//! A throwaway PostgreSQL 15 cluster for the tests and benchmarks (Debian's
//! postgresql-15; `scripts/test.sh` and `scripts/bench.sh` provide it and set
//! APPLIANCE_TEST_PG_BIN): initdb in a temp directory, a test CA and a server
//! certificate for `localhost`, postgres on 127.0.0.1 on a free port with TLS on, run as
//! `nobody` when the caller is root (initdb and postgres refuse root); stopped (fast
//! shutdown) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use super::{poll, stderr, stdout};

pub const PASSWORD: &str = "s3cret-for-tests";

/// A throwaway PostgreSQL cluster.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

pub fn pg_bin() -> PathBuf {
    PathBuf::from(std::env::var("APPLIANCE_TEST_PG_BIN").unwrap_or_else(|_| {
        panic!(
            "APPLIANCE_TEST_PG_BIN is not set: run the tests with scripts/test.sh, which installs PostgreSQL 15"
        )
    }))
}

fn as_owner(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if rustix::process::geteuid().is_root() {
        // initdb and postgres refuse to run as root.
        cmd.uid(65534).gid(65534);
    }
    cmd
}

fn chown_all(path: &Path) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let id = |n| Some(rustix::process::Uid::from_raw(n));
    let gid = Some(rustix::process::Gid::from_raw(65534));
    rustix::fs::chown(path, id(65534), gid).expect("chown");
    if path.is_dir() {
        for e in std::fs::read_dir(path).expect("read_dir") {
            chown_all(&e.expect("entry").path());
        }
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(o.status.success(), "{what}: {}{}", stdout(&o), stderr(&o));
}

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("openssl").current_dir(dir).args(args),
        "openssl",
    );
}

impl Cluster {
    /// initdb, a test CA and a server certificate for `localhost` (not 127.0.0.1), and
    /// postgres started; host connections must use TLS when `tls_only`.
    pub fn start(tls_only: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("pw"), PASSWORD).expect("pwfile");
        // The CA, and the server's certificate signed by it.
        openssl(
            root,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=appliance test CA",
            ],
        );
        openssl(
            root,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            root.join("ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext");
        openssl(
            root,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod key");
        chown_all(root);
        run_ok(
            as_owner(Command::new(pg_bin().join("initdb")).args([
                "-D",
                root.join("data").to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                root.join("pw").to_str().unwrap(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])),
            "initdb",
        );
        if tls_only {
            std::fs::write(
                root.join("data/pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\n",
            )
            .expect("pg_hba");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(root.join("log")).expect("log");
        let child = as_owner(Command::new(pg_bin().join("postgres")).args([
            "-D",
            root.join("data").to_str().unwrap(),
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("unix_socket_directories={}", root.display()),
            "-c",
            "fsync=off",
            "-c",
            "ssl=on",
            "-c",
            &format!("ssl_cert_file={}", root.join("server.crt").display()),
            "-c",
            &format!("ssl_key_file={}", root.join("server.key").display()),
        ]))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start postgres");
        let c = Cluster { dir, child, port };
        let ready = poll(Duration::from_secs(60), || {
            c.psql_try("postgres", "SELECT 1")
                .filter(|o| o.status.success())
        });
        assert!(
            ready.is_some(),
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default()
        );
        c
    }

    /// A URL for `db` over TCP with the password and `params`.
    pub fn url(&self, db: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}{params}",
            self.port
        )
    }

    pub fn psql_try(&self, db: &str, sql: &str) -> Option<Output> {
        Command::new(pg_bin().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .ok()
    }

    /// Run SQL over the local socket (trusted); its output, rows one per line.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let o = self.psql_try(db, sql).expect("psql");
        assert!(o.status.success(), "psql {sql}: {}", stderr(&o));
        stdout(&o).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let _ = super::exit_within(&mut self.child, Duration::from_secs(30));
    }
}
