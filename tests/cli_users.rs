//! The real binary end to end: a fresh server offers the one-time setup token, the first
//! admin is created with it, people sign in, tokens and users are managed through the
//! API and the CLI (while the server runs), the audit log shows it all — and the
//! server's whole debug log never contains a password, a session id, a CSRF token, an
//! API token or a reset link secret.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cli, poll, stderr, stdout};
use serde_json::{Value, json};

const ADMIN_PW: &str = "first admin passphrase";
const ADMIN_PW2: &str = "second admin passphrase";
const EDITOR_PW: &str = "editor passphrase 42";
const RESET_PW: &str = "reset by link passphrase";

fn run_with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn cookie_of(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("appliance_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("session cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_by_setup_token_then_users_and_tokens_and_no_secret_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("server.log");
    let (mut server, addr) = common::serve_logged(tmp.path(), &[("RUST_LOG", "debug")], &log_path);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let setup_token = poll(Duration::from_secs(10), || {
        common::log_value(&log_path, "setup_token")
    })
    .expect("the server logs a setup token");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut secrets: Vec<String> = vec![
        ADMIN_PW.into(),
        ADMIN_PW2.into(),
        EDITOR_PW.into(),
        RESET_PW.into(),
    ];

    // Nothing private without credentials; setup is offered.
    let res = http
        .get(format!("{base}/api/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = http
        .get(format!("{base}/api/auth/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"required": true, "token_active": true}));

    // A wrong token is refused; the right one creates the admin and signs it in.
    let body = |token: &str| json!({"token": token, "email": "Boss@Example.org", "password": ADMIN_PW, "display_name": "Boss"});
    let res = http
        .post(format!("{base}/api/auth/setup"))
        .json(&body("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .post(format!("{base}/api/auth/setup"))
        .json(&body(&setup_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = cookie_of(&res);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["user"]["role"], "admin");
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    secrets.push(cookie.trim_start_matches("appliance_session=").into());
    secrets.push(csrf.clone());
    let res = http
        .post(format!("{base}/api/auth/setup"))
        .json(&body(&setup_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "the setup token works once");

    // Sign in (email case does not matter), make an API token with the session.
    let res = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "boss@example.org", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "boss@example.org", "password": ADMIN_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = cookie_of(&res);
    let csrf = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(cookie.trim_start_matches("appliance_session=").into());
    secrets.push(csrf.clone());
    let res = http
        .post(format!("{base}/api/auth/tokens"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "deploy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let api_token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(api_token.clone());
    let res = http
        .post(format!("{base}/api/auth/password"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"current_password": ADMIN_PW, "new_password": ADMIN_PW2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    secrets.push(v["csrf_token"].as_str().unwrap().to_string());

    // The CLI, beside the running server: a user with a password from stdin.
    let mut cmd = cli(tmp.path());
    cmd.args([
        "user",
        "create",
        "--email",
        "ed@example.org",
        "--role",
        "editor",
        "--password-stdin",
    ]);
    let out = run_with_stdin(cmd, &format!("{EDITOR_PW}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("created editor user ed@example.org"),
        "{}",
        stdout(&out)
    );
    let mut weak = cli(tmp.path());
    weak.args([
        "user",
        "create",
        "--email",
        "weak@example.org",
        "--role",
        "viewer",
        "--password-stdin",
    ]);
    let out = run_with_stdin(weak, "password1234\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("common passwords"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // A reset link works once through the API.
    let out = cli(tmp.path())
        .args(["user", "reset-password", "--email", "ed@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let link = stdout(&out)
        .lines()
        .find(|l| l.contains("/admin/reset-password#token="))
        .unwrap()
        .to_string();
    let reset = link.rsplit("token=").next().unwrap().to_string();
    secrets.push(reset.clone());
    for expect in [200, 401] {
        let res = http
            .post(format!("{base}/api/auth/reset-password"))
            .json(&json!({"token": reset, "password": RESET_PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expect);
    }
    let res = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "ed@example.org", "password": RESET_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Tokens from the CLI: only the token on stdout.
    let out = cli(tmp.path())
        .args([
            "token",
            "create",
            "--email",
            "ed@example.org",
            "--name",
            "ci",
            "--role",
            "viewer",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cli_token = stdout(&out).trim().to_string();
    assert!(cli_token.starts_with("apl_") && !cli_token.contains(' '));
    secrets.push(cli_token.clone());
    let res = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(&cli_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "viewer");
    let out = cli(tmp.path())
        .args(["token", "list", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(!stdout(&out).contains(&cli_token));
    let out = cli(tmp.path())
        .args(["token", "revoke", &id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let res = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(&cli_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "revoked from the CLI, refused by the running server"
    );
    // Roles and disabling from the CLI; the last admin is protected.
    let out = cli(tmp.path())
        .args([
            "user",
            "set-role",
            "--email",
            "ed@example.org",
            "--role",
            "viewer",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(tmp.path())
        .args(["user", "disable", "--email", "BOSS@example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only enabled admin"),
        "{}",
        stderr(&out)
    );
    let out = cli(tmp.path())
        .args(["user", "disable", "--email", "ed@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(tmp.path()).args(["user", "list"]).output().unwrap();
    let listing = stdout(&out);
    assert!(
        listing.contains("Boss@Example.org") && listing.contains("disabled"),
        "{listing}"
    );
    let res = http
        .get(format!("{base}/api/admin/users"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("argon2"));

    // The audit log, from the CLI.
    let out = cli(tmp.path())
        .args(["audit", "tail", "-n", "100", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |action: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["outcome"] == outcome)
    };
    for (action, outcome) in [
        ("auth.setup", "failure"),
        ("auth.setup", "success"),
        ("auth.login", "failure"),
        ("auth.login", "success"),
        ("token.create", "success"),
        ("user.password_set", "success"),
        ("user.create", "success"),
        ("user.reset_link", "success"),
        ("user.password_reset", "success"),
        ("user.password_reset", "failure"),
        ("token.revoke", "success"),
        ("user.role_change", "success"),
        ("user.disable", "success"),
    ] {
        assert!(
            has(action, outcome),
            "no {action}/{outcome} in the audit log"
        );
    }
    // Setting a password through a reset link is one entry, not a password_set beside it.
    let set_for_ed: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["target"] == "ed@example.org"
                && e["outcome"] == "success"
                && e["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("user.password"))
        })
        .collect();
    assert_eq!(set_for_ed.len(), 1, "{set_for_ed:?}");
    assert!(
        entries
            .iter()
            .any(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("cli:")))
    );
    let text = stdout(&out);

    // Stop, then search every byte the server logged and the audit output.
    let _ = Command::new("kill")
        .args(["-TERM", &server.child_id()])
        .status();
    common::exit_within(&mut server, Duration::from_secs(60));
    let logged = log();
    assert!(logged.contains("signed in"), "debug log was captured");
    for s in &secrets {
        assert!(
            !logged.contains(s.as_str()),
            "a secret is in the server log: {}…",
            &s[..6.min(s.len())]
        );
        assert!(
            !text.contains(s.as_str()),
            "a secret is in the audit log: {}…",
            &s[..6.min(s.len())]
        );
    }
}

#[test]
fn secrets_come_from_systemd_credentials_and_are_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let dsn = "https://5ecre7key@sentry.example.org/42";
    std::fs::write(creds.join("sentry.dsn"), format!("{dsn}\n")).unwrap();
    // Picked up without any config key, as `LoadCredential=sentry.dsn:…` provides it.
    let out = cli(tmp.path())
        .env("CREDENTIALS_DIRECTORY", &creds)
        .args(["config", "print"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("dsn = \"[redacted]\""), "{printed}");
    assert!(!printed.contains("5ecre7key"), "{printed}");
    // A broken secret is named without its value.
    std::fs::write(creds.join("sentry.dsn"), "not-a-dsn-5ecre7key").unwrap();
    let out = cli(tmp.path())
        .env("CREDENTIALS_DIRECTORY", &creds)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("sentry.dsn"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("5ecre7key"), "{}", stderr(&out));
}

trait ChildId {
    fn child_id(&self) -> String;
}
impl ChildId for std::process::Child {
    fn child_id(&self) -> String {
        self.id().to_string()
    }
}
