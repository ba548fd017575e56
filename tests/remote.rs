//! Off-site copies of backups, for real: the binary against an S3-compatible server
//! (`rclone serve s3` on 127.0.0.1, tests/common/s3.rs), archives encrypted with age.
//!
//! - `appliance backup` uploads the verified archive encrypted (the bucket holds an age
//!   file and its signed sidecar, nothing readable); `backup list --remote` shows it;
//!   `backup verify s3://NAME` downloads, checks and verifies it (and says what is
//!   missing without the identity); a new machine restores it with `restore --remote`
//!   (the kept signing key and the age identity) with every article, searchable.
//! - The S3 server killed mid-upload (a relay in front of it kills it once 1 MiB of the
//!   upload went through): the backup says the copy failed, nothing in the bucket looks
//!   complete, and a push once the server is back succeeds.
//! - A corrupted remote object is refused by verify and restore; an object without its
//!   sidecar (an upload that did not finish) is listed as incomplete and never used;
//!   wrong credentials are one clear line, the local archive is untouched, `/readyz`
//!   says degraded until an upload succeeds and `doctor --online` names the problem; a remote without recipients is refused
//!   unless allow_unencrypted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::s3::{KEY_ID, S3, SECRET};
use common::{cli, poll, stderr, stdout};

/// A machine: its directory and config file (with `[backup.remote]`).
struct Machine {
    dir: PathBuf,
    config: PathBuf,
}

impl Machine {
    fn new(root: &Path, name: &str, s3: &S3, remote: &str) -> Machine {
        Machine::with_endpoint(root, name, &s3.endpoint(), remote)
    }

    fn with_endpoint(root: &Path, name: &str, endpoint: &str, remote: &str) -> Machine {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("s3-secret");
        std::fs::write(&secret, SECRET).unwrap();
        let config = dir.join("appliance.toml");
        std::fs::write(
            &config,
            format!(
                "[backup.remote]\nbucket = \"offsite\"\nendpoint = \"{}\"\npath_style = true\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key_file = \"{}\"\n{remote}\n",
                endpoint,
                secret.display()
            ),
        )
        .unwrap();
        Machine { dir, config }
    }

    fn run(&self, args: &[&str]) -> Output {
        cli(&self.dir)
            .env("APPLIANCE_CONFIG", &self.config)
            .args(args)
            .output()
            .expect("appliance")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        stdout(&o)
    }
}

fn articles(n: usize) -> String {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "external_id": format!("off-{i}"),
                "title": format!("Off-site article {i}"),
                "body": format!("Kept safe elsewhere: offsite number {i}."),
                "status": "published",
            })
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn backups_leave_encrypted_and_come_back_on_a_new_machine() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3::start(&root.path().join("s3"), &["offsite"]);
    let identity = age::x25519::Identity::generate();
    let id_file = root.path().join("identity.txt");
    std::fs::write(&id_file, identity.to_string().expose_secret()).unwrap();
    let recipients = format!("recipients = [\"{}\"]", identity.to_public());
    let id = id_file.to_str().unwrap();

    // The first machine: articles, a backup that goes off site.
    let vm1 = Machine::new(root.path(), "vm1", &s3, &recipients);
    vm1.ok(&["migrate", "run"]);
    let file = vm1.dir.join("in.jsonl");
    std::fs::write(&file, articles(60)).unwrap();
    vm1.ok(&["articles", "import", file.to_str().unwrap()]);
    let out = vm1.ok(&["backup"]);
    assert!(
        out.contains("off-site copy: s3://offsite/appliance/appliance-"),
        "{out}"
    );
    assert!(out.contains("encrypted with age"), "{out}");
    let name = out
        .lines()
        .find_map(|l| l.strip_prefix("backup written: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("archive name");

    // In the bucket: an age file and its sidecar, nothing readable.
    let object = s3.root.join(format!("offsite/appliance/{name}.age"));
    let bytes = std::fs::read(&object).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1"),
        "not an age file"
    );
    assert!(!bytes.windows(16).any(|w| w == b"SQLite format 3\0"));
    assert!(
        s3.root
            .join(format!("offsite/appliance/{name}.age.json"))
            .is_file()
    );
    let listed = vm1.ok(&["backup", "list", "--remote"]);
    assert!(
        listed.contains(&name) && listed.contains("complete, encrypted"),
        "{listed}"
    );

    // Verified from the bucket; without the identity it says what is missing.
    let remote = format!("s3://{name}");
    let out = vm1.ok(&["backup", "verify", &remote, "--identity-file", id]);
    assert!(out.contains("complete and restorable"), "{out}");
    let o = vm1.run(&["backup", "verify", &remote]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--identity-file"), "{}", stderr(&o));

    // A new machine: the kept signing key and the age identity bring it back.
    let key = vm1.dir.join("data/backup-signing.key");
    let vm2 = Machine::new(root.path(), "vm2", &s3, &recipients);
    let o = vm2.run(&["restore", "--remote", &name, "--identity-file", id]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a new machine has no key: refused"
    );
    assert!(stderr(&o).contains("--key-file"), "{}", stderr(&o));
    vm2.ok(&[
        "restore",
        "--remote",
        &name,
        "--identity-file",
        id,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let exported = vm2.ok(&["articles", "export"]);
    assert_eq!(exported.lines().count(), 60);
    let token = common::cli_admin_token(&vm2.dir);
    let mut server = common::start_server_env(
        &vm2.dir,
        &[("APPLIANCE_CONFIG", vm2.config.to_str().unwrap())],
    );
    let found = poll(Duration::from_secs(60), || {
        let (code, body) = common::http_get(&server.addr, "/api/search?q=offsite&limit=1")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["total"] == 60).then_some(())
    });
    // The Backups page's data: the copy in the bucket, complete and encrypted.
    let listed = common::http_get_auth(&server.addr, "/api/admin/backups", Some(&token))
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .expect("backups");
    let copy = &listed["offsite"]["copies"][&name];
    assert_eq!(listed["offsite"]["configured"], true, "{listed}");
    assert_eq!(copy["complete"], true, "{listed}");
    assert_eq!(copy["encrypted"], true, "{listed}");
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert!(
        found.is_some(),
        "the restored articles are not all searchable"
    );

    // An object without its sidecar: listed as incomplete, never used.
    std::fs::write(
        s3.root
            .join("offsite/appliance/appliance-20260101T000000Z-manual.tar.zst.age"),
        b"age-encryption.org/v1\npartial",
    )
    .unwrap();
    let listed = vm1.ok(&["backup", "list", "--remote"]);
    assert!(listed.contains("INCOMPLETE"), "{listed}");
    let o = vm1.run(&[
        "backup",
        "verify",
        "s3://appliance-20260101T000000Z-manual.tar.zst",
        "--identity-file",
        id,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no completed upload"), "{}", stderr(&o));

    // A corrupted remote object: refused by verify and by restore.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&object, &bad).unwrap();
    let o = vm1.run(&["backup", "verify", &remote, "--identity-file", id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is damaged"), "{}", stderr(&o));
    let vm3 = Machine::new(root.path(), "vm3", &s3, &recipients);
    let o = vm3.run(&[
        "restore",
        "--remote",
        &name,
        "--identity-file",
        id,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is damaged"), "{}", stderr(&o));
    assert!(!vm3.dir.join("data/appliance.db").exists());
}

#[test]
fn wrong_credentials_are_one_line_leave_the_local_archive_alone_and_show_in_readyz() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3::start(&root.path().join("s3"), &["offsite"]);
    let identity = age::x25519::Identity::generate();
    let recipients = format!("recipients = [\"{}\"]", identity.to_public());
    let vm = Machine::new(root.path(), "vm", &s3, &recipients);
    std::fs::write(vm.dir.join("s3-secret"), "not-the-secret").unwrap();
    vm.ok(&["migrate", "run"]);
    let o = vm.run(&["backup"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{e}");
    assert!(errors[0].contains("the off-site copy failed"), "{e}");
    assert!(
        errors[0].contains("cannot upload") && errors[0].contains("access denied"),
        "{e}"
    );
    // The archive is there and verifies.
    let listed = vm.ok(&["backup", "list"]);
    let name = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("an archive");
    vm.ok(&["backup", "verify", name]);

    // /readyz says so (degraded, never failing), until an upload succeeds.
    let readyz_backup = |vm: &Machine| {
        let mut server = common::start_server_env(
            &vm.dir,
            &[("APPLIANCE_CONFIG", vm.config.to_str().unwrap())],
        );
        let got = poll(Duration::from_secs(30), || {
            let (_, body) = common::http_get(&server.addr, "/readyz")?;
            serde_json::from_str::<serde_json::Value>(&body).ok()
        });
        let _ = server.child.kill();
        let _ = server.child.wait();
        got.expect("readyz")["checks"]["backup"].clone()
    };
    let b = readyz_backup(&vm);
    assert_eq!(b["status"], "degraded", "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("the last off-site copy failed"),
        "{b}"
    );
    // doctor --online says what is wrong with the bucket, in one line.
    let o = vm.run(&["doctor", "--online"]);
    assert_eq!(o.status.code(), Some(2));
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains("offsite"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.starts_with("FAIL offsite") && line.contains("access denied"),
        "{line}"
    );
    std::fs::write(vm.dir.join("s3-secret"), SECRET).unwrap();
    let o = vm.run(&["doctor", "--online"]);
    assert!(
        stdout(&o).contains(
            "ok   offsite       s3://offsite/appliance/ accepts writes, lists and deletes"
        ),
        "{}",
        stdout(&o)
    );
    let out = vm.ok(&["backup", "push"]);
    assert!(out.contains("off-site copy: "), "{out}");
    let b = readyz_backup(&vm);
    assert_eq!(b["status"], "ok", "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("off-site copy at"),
        "{b}"
    );

    // Unencrypted only when asked for.
    let plain = Machine::new(root.path(), "plain", &s3, "");
    let o = plain.run(&["config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("backup.remote.recipients"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn retention_in_the_bucket_keeps_the_newest_copies() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3::start(&root.path().join("s3"), &["offsite"]);
    let identity = age::x25519::Identity::generate();
    let remote = format!(
        "recipients = [\"{}\"]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0",
        identity.to_public()
    );
    let vm = Machine::new(root.path(), "vm", &s3, &remote);
    vm.ok(&["migrate", "run"]);
    let mut names = Vec::new();
    for _ in 0..3 {
        let out = vm.ok(&["backup"]);
        names.push(
            out.lines()
                .find_map(|l| l.strip_prefix("backup written: "))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|p| Path::new(p).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .expect("archive name"),
        );
    }
    let listed = vm.ok(&["backup", "list", "--remote"]);
    assert!(
        !listed.contains(&names[0]),
        "the oldest copy is kept: {listed}"
    );
    assert!(
        listed.contains(&names[1]) && listed.contains(&names[2]),
        "{listed}"
    );
    let files: Vec<String> = std::fs::read_dir(s3.root.join("offsite/appliance"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 4, "two copies with their sidecars: {files:?}");
}

/// A TCP relay to `to` on a free port; once `after` bytes went from clients to the
/// server, `trip` runs (once).
fn relay(to: u16, after: usize, trip: impl FnOnce() + Send + 'static) -> u16 {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    type Trip = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;
    let trip: Trip = Arc::new(Mutex::new(Some(Box::new(trip))));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let (sent, trip) = (sent.clone(), trip.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if sent.fetch_add(n, Ordering::SeqCst) + n >= after
                        && let Some(t) = trip.lock().unwrap().take()
                    {
                        t();
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn the_server_killed_mid_upload_leaves_nothing_complete_and_a_retry_succeeds() {
    use std::sync::{Arc, Mutex};
    let root = tempfile::tempdir().unwrap();
    let s3_root = root.path().join("s3");
    let s3 = S3::start(&s3_root, &["offsite"]);
    let s3_port = s3.port;
    let running = Arc::new(Mutex::new(Some(s3)));
    let killer = running.clone();
    let port = relay(s3_port, 1 << 20, move || {
        // Killed (SIGKILL) mid-upload: dropping it kills rclone.
        drop(killer.lock().unwrap().take());
    });
    let identity = age::x25519::Identity::generate();
    let recipients = format!("recipients = [\"{}\"]", identity.to_public());
    // The machine talks to the relay.
    let endpoint = format!("http://127.0.0.1:{port}");
    let vm = Machine::with_endpoint(root.path(), "vm", &endpoint, &recipients);
    vm.ok(&["migrate", "run"]);
    // Incompressible bodies: an archive of several MiB.
    let mut lines = String::new();
    for i in 0..4000 {
        let body: String = (0..128)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        lines.push_str(
            &serde_json::json!({"external_id": format!("big-{i}"), "title": format!("Big {i}"), "body": body})
                .to_string(),
        );
        lines.push('\n');
    }
    let file = vm.dir.join("big.jsonl");
    std::fs::write(&file, lines).unwrap();
    vm.ok(&["articles", "import", file.to_str().unwrap()]);
    let o = vm.run(&["backup"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let e = stderr(&o);
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{e}");
    assert!(errors[0].contains("the off-site copy failed"), "{e}");
    assert!(
        running.lock().unwrap().is_none(),
        "the server was not killed mid-upload"
    );

    // Back where it was: nothing in the bucket looks complete; a push succeeds.
    *running.lock().unwrap() = Some(S3::start_on(&s3_root, &["offsite"], s3_port));
    let listed = vm.ok(&["backup", "list", "--remote"]);
    assert!(!listed.contains("complete,"), "{listed}");
    let out = vm.ok(&["backup", "push"]);
    assert!(out.contains("off-site copy: "), "{out}");
    let listed = vm.ok(&["backup", "list", "--remote"]);
    assert!(listed.contains("complete, encrypted"), "{listed}");
}
