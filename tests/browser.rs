//! The admin UI in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) with fantoccini. A fresh server offers the first-admin
//! setup; the page creates the admin with the setup token, shows who is signed in,
//! signs out, refuses a wrong password with the server's message, and signs in again.
//! `scripts/test.sh` installs `chromium` and `chromium-driver` when missing; without
//! them this test fails, it never skips.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use appliance::app::App;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn browser() -> (Driver, fantoccini::Client) {
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {chromedriver} (scripts/test.sh installs chromium-driver): {e}")
        });
    let driver = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", tempfile::tempdir().unwrap().keep().display())]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("chromedriver at {url} did not start a session: {e}"),
        }
    }
}

async fn text_of(c: &fantoccini::Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Wait until the element's text contains `want`.
async fn wait_text(c: &fantoccini::Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = text_of(c, css).await;
        if t.contains(want) {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} shows {t:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(c: &fantoccini::Client, form: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        let input = c
            .find(Locator::Css(&format!("#{form} input[name={name}]")))
            .await
            .unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    c.find(Locator::Css(&format!("#{form} button[type=submit]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_setup_sign_out_and_sign_in_in_chromium() {
    // A fresh server: no users, so it offers the setup token.
    let tmp = tempfile::tempdir().unwrap();
    let config = common::test_config(&tmp.path().join("data"));
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    // The token the server logged: the same one it holds.
    let token = common::poll(Duration::from_secs(10), || state.setup_token().current())
        .expect("setup token");

    let (_driver, c) = browser().await;
    c.goto(&format!("{base}/admin/")).await.unwrap();
    assert!(c.title().await.unwrap().contains("appliance"));
    wait_text(&c, "#setup h2", "Create the first admin").await;
    fill(
        &c,
        "setup-form",
        &[
            ("token", &token),
            ("email", "boss@example.org"),
            ("password", "a long browser passphrase"),
        ],
    )
    .await;
    wait_text(&c, "#who", "boss@example.org (admin)").await;
    wait_text(&c, "#home-text", "Welcome").await;

    // Sign out, then a wrong password shows the server's message, then the right one.
    c.find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#signin h2", "Sign in").await;
    fill(
        &c,
        "signin-form",
        &[
            ("email", "boss@example.org"),
            ("password", "not the passphrase"),
        ],
    )
    .await;
    wait_text(&c, "#error", "wrong email or password").await;
    fill(
        &c,
        "signin-form",
        &[
            ("email", "boss@example.org"),
            ("password", "a long browser passphrase"),
        ],
    )
    .await;
    wait_text(&c, "#who", "boss@example.org (admin)").await;
    // The session cookie is HttpOnly: scripts cannot read it.
    let cookie = c.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(
        cookie,
        json!(""),
        "the session cookie is not visible to scripts"
    );

    c.close().await.unwrap();
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
