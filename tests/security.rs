//! Security: the route × role matrix over every route of the router, sessions (cookie
//! flags, fixation, CSRF, same-origin, expiry, revocation), API tokens (expiry,
//! revocation, role cap), disabled users, brute force (429, lockout, audit), headers,
//! CORS, JSON depth, public read switch, and that no response carries a password hash.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use appliance::auth::Role;
use appliance::auth::ops::{self, Actor, NewUser, TokenRequest};
use appliance::db::users;
use common::{TestApp, client_with_token, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "matrix-password-1";

/// Create a user with a password and an API token of its role; (user id, token).
async fn user_with_token(app: &TestApp, email: &str, role: Role) -> (i64, String) {
    let hash = appliance::auth::hash_password(PASSWORD).unwrap();
    let email = email.to_string();
    app.state()
        .db()
        .write(move |c| {
            let actor = Actor::cli();
            let u = ops::create_user(
                c,
                &NewUser {
                    email: email.clone(),
                    display_name: String::new(),
                    role,
                    password_hash: Some(hash.clone()),
                },
                &actor,
            )?;
            let req = TokenRequest {
                owner: u.clone(),
                name: "t".into(),
                role,
                expires_at: None,
            };
            ops::issue_token(c, &req, &actor).map(|(t, _)| (u.id, t))
        })
        .await
        .unwrap()
}

async fn new_token(app: &TestApp, user_id: i64) -> i64 {
    app.state()
        .db()
        .write(move |c| {
            let owner = users::get(c, user_id)?.unwrap();
            let req = TokenRequest {
                role: owner.role,
                owner,
                name: "spare".into(),
                expires_at: None,
            };
            ops::issue_token(c, &req, &Actor::cli()).map(|(_, t)| t.id)
        })
        .await
        .unwrap()
}

async fn reset_secret(app: &TestApp, user_id: i64) -> String {
    app.state()
        .db()
        .write(move |c| {
            let u = users::get(c, user_id)?.unwrap();
            ops::issue_reset(c, &u, time::Duration::hours(1), &Actor::cli()).map(|(s, _)| s)
        })
        .await
        .unwrap()
}

/// Create an article as admin; `deleted` soft-deletes it. Returns its id.
async fn article(app: &TestApp, deleted: bool) -> i64 {
    let (s, v) = app
        .post(
            "/api/articles",
            json!({"title": "Matrix", "body": "b", "status": "published"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    if deleted {
        let res = app
            .client
            .delete(app.url(&format!("/api/articles/{id}")))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    id
}

const ROLES: [&str; 4] = ["anonymous", "viewer", "editor", "admin"];

/// What each role must get: an exact status, or 0 for "any 2xx".
struct Case {
    method: Method,
    pattern: &'static str,
    /// Concrete path and body per role (anonymous, viewer, editor, admin).
    requests: Vec<(String, Option<Value>)>,
    expect: [u16; 4],
}

fn same(path: &str, body: Option<Value>) -> Vec<(String, Option<Value>)> {
    vec![(path.to_string(), body); 4]
}

const OPEN: [u16; 4] = [0, 0, 0, 0];
const SIGNED_IN: [u16; 4] = [401, 0, 0, 0];
const EDITOR: [u16; 4] = [401, 403, 0, 0];
const ADMIN: [u16; 4] = [401, 403, 403, 0];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_gives_each_role_exactly_the_intended_answer() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_per_15_min = 1000;
    })
    .await;
    let (viewer, viewer_token) = user_with_token(&app, "viewer@test.example", Role::Viewer).await;
    let (editor, editor_token) = user_with_token(&app, "editor@test.example", Role::Editor).await;
    let admin = app
        .state()
        .db()
        .read(|c| users::by_email(c, common::ADMIN_EMAIL))
        .await
        .unwrap()
        .unwrap()
        .id;
    // The test admin has no password yet; give it the common one.
    let hash = appliance::auth::hash_password(PASSWORD).unwrap();
    app.state()
        .db()
        .write(move |c| {
            let change = users::Change {
                password_hash: Some(hash.clone()),
                ..Default::default()
            };
            ops::change_user(c, admin, &change, &Actor::cli())
        })
        .await
        .unwrap();
    let clients = [
        app.anon.clone(),
        client_with_token(&viewer_token),
        client_with_token(&editor_token),
        app.client.clone(),
    ];
    let owners = [viewer, viewer, editor, admin];

    // Resources the requests act on, one per role where a request consumes it.
    let published = article(&app, false).await;
    let mut per_role_articles = Vec::new();
    let mut per_role_deleted = Vec::new();
    let mut per_role_tokens = Vec::new();
    let mut per_role_resets = Vec::new();
    for owner in owners {
        per_role_articles.push(article(&app, false).await);
        per_role_deleted.push(article(&app, true).await);
        per_role_tokens.push(new_token(&app, owner).await);
        // A user per link: a new password spends the user's other links.
        let email = format!("reset{}@test.example", per_role_resets.len());
        let (resettable, _) = user_with_token(&app, &email, Role::Viewer).await;
        per_role_resets.push(reset_secret(&app, resettable).await);
    }
    let (s, _) = app.post("/api/admin/backups", json!({})).await;
    assert_eq!(s, 202);
    let backup = common::poll(std::time::Duration::from_secs(30), || {
        let v = futures_lite(app.get_json("/api/admin/backups"));
        v.1["backups"][0]["name"].as_str().map(str::to_owned)
    })
    .expect("a backup for the download and verify routes");
    let per = |f: &dyn Fn(usize) -> (String, Option<Value>)| (0..4).map(f).collect::<Vec<_>>();

    let cases = vec![
        Case {
            method: Method::GET,
            pattern: "/health",
            requests: same("/health", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/readyz",
            requests: same("/readyz", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/admin",
            requests: same("/admin", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/admin/",
            requests: same("/admin/", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/admin/{*path}",
            requests: same(
                &format!(
                    "/admin/assets/{}/app.js",
                    appliance::http::ui::fingerprint()
                ),
                None,
            ),
            expect: OPEN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/login",
            requests: same(
                "/api/auth/login",
                Some(json!({"email": "viewer@test.example", "password": PASSWORD})),
            ),
            expect: OPEN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/logout",
            requests: same("/api/auth/logout", None),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/auth/me",
            requests: same("/api/auth/me", None),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/auth/setup",
            requests: same("/api/auth/setup", None),
            expect: OPEN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/setup",
            requests: same(
                "/api/auth/setup",
                Some(json!({"token": "x", "email": "a@b.org", "password": PASSWORD})),
            ),
            // Users exist: setup is over for everyone.
            expect: [409; 4],
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/password",
            requests: same(
                "/api/auth/password",
                Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
            ),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/reset-password",
            requests: per(&|i| {
                (
                    "/api/auth/reset-password".into(),
                    Some(json!({"token": per_role_resets[i], "password": PASSWORD})),
                )
            }),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/auth/tokens",
            requests: same("/api/auth/tokens", None),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/auth/tokens",
            requests: same("/api/auth/tokens", Some(json!({"name": "n"}))),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::DELETE,
            pattern: "/api/auth/tokens/{id}",
            requests: per(&|i| (format!("/api/auth/tokens/{}", per_role_tokens[i]), None)),
            expect: SIGNED_IN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/articles",
            requests: same("/api/articles", None),
            expect: OPEN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/articles",
            requests: same("/api/articles", Some(json!({"title": "new", "body": "b"}))),
            expect: EDITOR,
        },
        Case {
            method: Method::POST,
            pattern: "/api/articles/bulk",
            requests: same(
                "/api/articles/bulk",
                Some(json!([{"title": "bulk", "body": "b"}])),
            ),
            expect: EDITOR,
        },
        Case {
            method: Method::POST,
            pattern: "/api/articles/import",
            // A JSON object on one line is a one-line JSON-lines file.
            requests: same(
                "/api/articles/import",
                Some(json!({"title": "imported", "body": "b"})),
            ),
            expect: EDITOR,
        },
        Case {
            method: Method::POST,
            pattern: "/api/articles/preview",
            requests: same("/api/articles/preview", Some(json!({"body": "# hi"}))),
            expect: EDITOR,
        },
        Case {
            method: Method::GET,
            pattern: "/api/articles/{key}",
            requests: same(&format!("/api/articles/{published}"), None),
            expect: OPEN,
        },
        Case {
            method: Method::PATCH,
            pattern: "/api/articles/{key}",
            requests: same(
                &format!("/api/articles/{published}"),
                Some(json!({"category": "c"})),
            ),
            expect: EDITOR,
        },
        Case {
            method: Method::DELETE,
            pattern: "/api/articles/{key}",
            requests: per(&|i| (format!("/api/articles/{}", per_role_articles[i]), None)),
            expect: EDITOR,
        },
        Case {
            method: Method::POST,
            pattern: "/api/articles/{key}/restore",
            requests: per(&|i| {
                (
                    format!("/api/articles/{}/restore", per_role_deleted[i]),
                    None,
                )
            }),
            expect: EDITOR,
        },
        Case {
            method: Method::GET,
            pattern: "/api/search",
            requests: same("/api/search?q=matrix", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/overview",
            requests: same("/api/admin/overview", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/metrics/history",
            requests: same("/api/admin/metrics/history", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/migrations",
            requests: same("/api/admin/migrations", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/settings",
            requests: same("/api/admin/settings", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/index",
            requests: same("/api/admin/index", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/index/verify",
            requests: same("/api/admin/index/verify", None),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/index/rebuild",
            requests: same("/api/admin/index/rebuild", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/openapi.json",
            requests: same("/api/openapi.json", None),
            expect: OPEN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/jobs",
            requests: same("/api/admin/jobs", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/jobs/{id}",
            // Job 1 is the backup started above.
            requests: same("/api/admin/jobs/1", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/backups",
            requests: same("/api/admin/backups", None),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/backups",
            requests: same("/api/admin/backups", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/backups/{name}",
            requests: same(&format!("/api/admin/backups/{backup}"), None),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/backups/{name}/verify",
            requests: same(&format!("/api/admin/backups/{backup}/verify"), None),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/backups/{name}/restore",
            // Not the archive's name: an admin gets 422, and nothing restarts.
            requests: same(
                &format!("/api/admin/backups/{backup}/restore"),
                Some(json!({"confirm": "not the name"})),
            ),
            expect: [401, 403, 403, 422],
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/users",
            requests: same("/api/admin/users", None),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/users",
            requests: per(&|i| {
                (
                    "/api/admin/users".into(),
                    Some(json!({"email": format!("made{i}@test.example"), "role": "viewer"})),
                )
            }),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/users/{id}",
            requests: same(&format!("/api/admin/users/{viewer}"), None),
            expect: ADMIN,
        },
        Case {
            method: Method::PATCH,
            pattern: "/api/admin/users/{id}",
            requests: same(
                &format!("/api/admin/users/{viewer}"),
                Some(json!({"display_name": "V"})),
            ),
            expect: ADMIN,
        },
        Case {
            method: Method::POST,
            pattern: "/api/admin/users/{id}/reset-link",
            requests: same(&format!("/api/admin/users/{viewer}/reset-link"), None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/audit",
            requests: same("/api/admin/audit", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/errors",
            requests: same("/api/admin/errors?severity=high", None),
            expect: ADMIN,
        },
        Case {
            method: Method::GET,
            pattern: "/api/admin/alerts",
            requests: same("/api/admin/alerts", None),
            expect: ADMIN,
        },
    ];

    // The table here and the router's table must list the same routes.
    let table: Vec<(String, String)> = appliance::http::route_table()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let mine: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.pattern.to_string()))
        .collect();
    for route in &table {
        assert!(
            mine.contains(route),
            "route {route:?} has no entry in this test's access table"
        );
    }
    for case in &mine {
        assert!(
            table.contains(case),
            "{case:?} is not a route of the router"
        );
    }

    let mut failures = Vec::new();
    for case in &cases {
        for (i, client) in clients.iter().enumerate() {
            let (path, body) = &case.requests[i];
            let mut req = client.request(case.method.clone(), app.url(path));
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let want = case.expect[i];
            let ok = if want == 0 {
                (200..300).contains(&status)
            } else {
                status == want
            };
            if !ok {
                let text = res.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} {} as {}: got {status}, want {} — {}",
                    case.method,
                    path,
                    ROLES[i],
                    if want == 0 {
                        "2xx".into()
                    } else {
                        want.to_string()
                    },
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    app.stop().await.unwrap();
}

/// Block on a future from inside `poll` (which takes a plain closure).
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("appliance_session="))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

async fn login(
    app: &TestApp,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .anon
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .anon
        .request(method, app.url(path))
        .header("cookie", cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sessions_have_safe_cookies_new_ids_and_need_csrf() {
    let app = spawn_app_with(|_| {}).await;
    user_with_token(&app, "ed@test.example", Role::Editor).await;

    let res = login(&app, "ed@test.example", PASSWORD, None).await;
    assert_eq!(res.status(), 200);
    let sc = set_cookie(&res).expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(sc.contains(attr), "{attr} missing: {sc}");
    }
    assert!(!sc.contains("Secure"), "no TLS proxy configured: {sc}");
    let v: Value = res.json().await.unwrap();
    assert!(v["user"].get("password_hash").is_none() && !v.to_string().contains("$argon2"));
    let first = cookie_value(&sc);
    let csrf = v["csrf_token"].as_str().unwrap().to_string();

    // Fixation: signing in again while presenting a cookie gives a new id; the old ends.
    let res = login(&app, "ed@test.example", PASSWORD, Some(&first)).await;
    let second = cookie_value(&set_cookie(&res).unwrap());
    let csrf2 = res.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let (s, _) = with_cookie(&app, Method::GET, "/api/auth/me", &first, None, None).await;
    assert_eq!(s, 401, "the old session id ended");
    let (s, me) = with_cookie(&app, Method::GET, "/api/auth/me", &second, None, None).await;
    assert_eq!(s, 200);
    assert_eq!(me["via"], "session");
    assert_eq!(me["csrf_token"], csrf2.as_str());
    assert_ne!(csrf, csrf2);

    // CSRF: missing or wrong → 403; right → the write happens. Reads need none.
    let body = json!({"title": "csrf", "body": "b"});
    let (s, e) = with_cookie(
        &app,
        Method::POST,
        "/api/articles",
        &second,
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-csrf-token"),
        "{e}"
    );
    let (s, _) = with_cookie(
        &app,
        Method::POST,
        "/api/articles",
        &second,
        Some(&csrf),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 403, "the first session's token does not fit the second");
    let (s, _) = with_cookie(
        &app,
        Method::POST,
        "/api/articles",
        &second,
        Some(&csrf2),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201);
    // Same-origin: a cross-site Origin is refused even with the right token.
    let res = app
        .anon
        .post(app.url("/api/articles"))
        .header("cookie", &second)
        .header("x-csrf-token", &csrf2)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Bearer requests need no CSRF token.
    let (s, _) = app
        .post("/api/articles", json!({"title": "bearer", "body": "b"}))
        .await;
    assert_eq!(s, 201);

    // Logout ends the session and clears the cookie.
    let res = app
        .anon
        .post(app.url("/api/auth/logout"))
        .header("cookie", &second)
        .header("x-csrf-token", &csrf2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(set_cookie(&res).unwrap().contains("Max-Age=0"));
    let (s, _) = with_cookie(&app, Method::GET, "/api/auth/me", &second, None, None).await;
    assert_eq!(s, 401);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_sessions_and_tokens_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    let (uid, token) = user_with_token(&app, "ed@test.example", Role::Editor).await;
    let db = app.db_path();
    let sql = |q: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(q)
            .unwrap()
    };
    let me = |c: reqwest::Client| {
        let url = app.url("/api/auth/me");
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };

    // Idle timeout.
    let c =
        cookie_value(&set_cookie(&login(&app, "ed@test.example", PASSWORD, None).await).unwrap());
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        200
    );
    sql("UPDATE sessions SET last_seen_at = '2000-01-01T00:00:00.000Z'");
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        401
    );
    // Absolute timeout.
    let c =
        cookie_value(&set_cookie(&login(&app, "ed@test.example", PASSWORD, None).await).unwrap());
    sql("UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000Z'");
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        401
    );

    // Tokens: valid, then expired, then revoked; a malformed one. The token is known to
    // the server's token cache by now, and these are hand-made SQL edits that no writer
    // announces: the server's once-a-second recheck notices them (changes through the
    // API or the CLI hold at once: see the test below).
    let tc = client_with_token(&token);
    assert_eq!(me(tc.clone()).await, 200);
    sql("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000Z' WHERE name = 't'");
    let refused = common::poll(Duration::from_secs(5), || {
        (futures_lite(me(tc.clone())) == 401).then_some(())
    });
    assert!(refused.is_some(), "an expired token is refused");
    sql("UPDATE api_tokens SET expires_at = NULL WHERE name = 't'");
    assert_eq!(me(tc.clone()).await, 200);
    let id = app
        .state()
        .db()
        .read(move |c| users::list_tokens(c, Some(uid)))
        .await
        .unwrap()[0]
        .id;
    let res = tc
        .delete(app.url(&format!("/api/auth/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(me(tc.clone()).await, 401);
    let res = client_with_token("apl_nonsense")
        .get(app.url("/api/articles"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a bad token is refused even where anonymous may read"
    );
    assert!(res.headers().contains_key("www-authenticate"));
    // Same prefix, wrong secret: refused (compared in constant time).
    let good = {
        let (_, t) = user_with_token(&app, "other@test.example", Role::Viewer).await;
        t
    };
    let forged = format!("{}{}", &good[..good.len() - 4], "0000");
    assert_eq!(me(client_with_token(&forged)).await, 401);
    assert_eq!(me(client_with_token(&good)).await, 200);

    // A role change ends sessions and caps tokens at the new role.
    let (uid2, tok2) = user_with_token(&app, "demote@test.example", Role::Editor).await;
    let c = cookie_value(
        &set_cookie(&login(&app, "demote@test.example", PASSWORD, None).await).unwrap(),
    );
    let (s, _) = app
        .patch(
            &format!("/api/admin/users/{uid2}"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        401
    );
    let res = client_with_token(&tok2)
        .post(app.url("/api/articles"))
        .json(&json!({"title": "x", "body": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "the editor token of a viewer acts as a viewer"
    );

    // A password change ends the other sessions.
    let c = cookie_value(
        &set_cookie(&login(&app, "other@test.example", PASSWORD, None).await).unwrap(),
    );
    let res = client_with_token(&good)
        .post(app.url("/api/auth/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        401
    );
    assert_eq!(
        login(&app, "other@test.example", PASSWORD, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&app, "other@test.example", "a brand new passphrase", None)
            .await
            .status(),
        200
    );
    app.stop().await.unwrap();
}

/// The server remembers the API tokens it verified; every change to a token or its user
/// made through the API or the CLI (another process) holds from the very next request.
#[tokio::test]
async fn a_remembered_token_obeys_every_change_from_the_next_request_on() {
    let app = spawn_app_with(|_| {}).await;
    let me = |token: &str| {
        let (c, url) = (client_with_token(token), app.url("/api/auth/me"));
        async move {
            let res = c.get(url).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    let create = |token: &str| {
        let (c, url) = (client_with_token(token), app.url("/api/articles"));
        async move {
            c.post(url)
                .json(&json!({"title": "t", "body": "b"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    // A role lowered through the admin API: the next write is refused.
    let (uid, token) = user_with_token(&app, "ed@test.example", Role::Editor).await;
    for _ in 0..3 {
        assert_eq!(me(&token).await.0, 200);
    }
    assert_eq!(create(&token).await, 201);
    let (s, _) = app
        .patch(
            &format!("/api/admin/users/{uid}"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(create(&token).await, 403, "now a viewer");
    assert_eq!(me(&token).await.1["role"], "viewer");

    // Revoked through the API.
    let (uid2, token2) = user_with_token(&app, "rev@test.example", Role::Editor).await;
    assert_eq!(me(&token2).await.0, 200);
    assert_eq!(me(&token2).await.0, 200);
    let id = app
        .state()
        .db()
        .read(move |c| users::list_tokens(c, Some(uid2)))
        .await
        .unwrap()[0]
        .id;
    let res = app
        .client
        .delete(app.url(&format!("/api/auth/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(me(&token2).await.0, 401, "revoked through the API");

    // Disabled and then revoked by the CLI, another process, while the server runs.
    let dir = app.data_dir.parent().unwrap().to_path_buf();
    let (_, token3) = user_with_token(&app, "cli@test.example", Role::Editor).await;
    assert_eq!(me(&token3).await.0, 200);
    assert_eq!(me(&token3).await.0, 200);
    let out = common::cli(&dir)
        .args(["user", "disable", "--email", "cli@test.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(me(&token3).await.0, 401, "disabled by the CLI");
    let out = common::cli(&dir)
        .args(["user", "enable", "--email", "cli@test.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(me(&token3).await.0, 200, "enabled again by the CLI");
    assert_eq!(me(&token3).await.0, 200);
    app.stop().await.unwrap();
}
#[tokio::test]
async fn a_disabled_user_is_locked_out_everywhere() {
    let app = spawn_app_with(|_| {}).await;
    let (uid, token) = user_with_token(&app, "gone@test.example", Role::Editor).await;
    let c =
        cookie_value(&set_cookie(&login(&app, "gone@test.example", PASSWORD, None).await).unwrap());
    let (s, v) = app
        .patch(
            &format!("/api/admin/users/{uid}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["disabled"], true);
    let res = login(&app, "gone@test.example", PASSWORD, None).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        with_cookie(&app, Method::GET, "/api/auth/me", &c, None, None)
            .await
            .0,
        401
    );
    let res = client_with_token(&token)
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The last enabled admin cannot be disabled or demoted.
    let admin = app.get_json("/api/auth/me").await.1["user"]["id"]
        .as_i64()
        .unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/admin/users/{admin}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only enabled admin"),
        "{v}"
    );
    // Enabled again: the token works again (it was never revoked), sign-in too.
    let (s, _) = app
        .patch(
            &format!("/api/admin/users/{uid}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    let res = client_with_token(&token)
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, audit) = app.get_json("/api/admin/audit?action=user.").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.disable") && actions.contains(&"user.enable"),
        "{actions:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn brute_force_is_rate_limited_then_the_account_locked_out_and_audited() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_per_15_min = 3;
        c.security.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    user_with_token(&app, "victim@test.example", Role::Viewer).await;
    let attempt = |ip: &'static str, password: &'static str| {
        let req = app
            .anon
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "victim@test.example", "password": password}));
        async move { req.send().await.unwrap() }
    };
    // Per IP: three attempts, then 429 with Retry-After and the JSON error shape.
    for _ in 0..3 {
        assert_eq!(
            attempt("198.51.100.1", "wrong password!!").await.status(),
            401
        );
    }
    let res = attempt("198.51.100.1", "wrong password!!").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Per account: from a fresh address the account is locked (3 attempts were spent),
    // even with the right password.
    let res = attempt("203.0.113.9", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(
        res.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this account")
    );
    // Another account from that address is not affected.
    user_with_token(&app, "bystander@test.example", Role::Viewer).await;
    let res = app
        .anon
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", "203.0.113.10")
        .json(&json!({"email": "bystander@test.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (_, v) = app
        .get_json("/api/admin/audit?action=auth.&limit=100")
        .await;
    let entries = v["entries"].as_array().unwrap();
    let count = |action: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("auth.login", "failure"), 3, "{v}");
    assert_eq!(count("auth.lockout", "denied"), 1, "one lockout entry: {v}");
    assert_eq!(count("auth.login", "success"), 1);
    let failure = entries
        .iter()
        .find(|e| e["action"] == "auth.login" && e["outcome"] == "failure")
        .unwrap();
    assert_eq!(
        failure["ip"], "198.51.100.1",
        "the client address from the trusted proxy"
    );
    assert!(
        !v.to_string().contains("wrong password!!"),
        "no password in the audit log"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sign_in_audit_records_a_bounded_name_never_the_typed_input() {
    let app = spawn_app_with(|c| c.server.body_limit_bytes = 4 * 1024 * 1024).await;
    user_with_token(&app, "known@test.example", Role::Viewer).await;
    let huge = format!("{}@test.example", "a".repeat(1_100_000));
    for email in [
        "correct horse battery staple",
        huge.as_str(),
        "nobody@test.example",
        "known@test.example",
    ] {
        let res = app
            .anon
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": email, "password": "not the password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{}", &email[..email.len().min(40)]);
    }
    let (_, v) = app
        .get_json("/api/admin/audit?action=auth.login&limit=100")
        .await;
    let targets: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert!(
        targets.iter().all(|t| t.chars().count() <= 320),
        "{:?}",
        targets.iter().map(|t| t.len()).collect::<Vec<_>>()
    );
    assert!(
        !v.to_string().contains("horse"),
        "the typed password is in the audit log"
    );
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.starts_with("unparsed:"))
            .count(),
        2,
        "{targets:?}"
    );
    assert!(targets.contains(&"nobody@test.example") && targets.contains(&"known@test.example"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn security_headers_on_api_error_and_probe_responses() {
    let app = spawn_app_with(|_| {}).await;
    for path in ["/api/articles", "/api/nope", "/health"] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "{path}: no TLS, no HSTS"
        );
        assert!(
            !h.contains_key("access-control-allow-origin"),
            "{path}: CORS off"
        );
        if path.starts_with("/api/") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
    }
    // JSON nested past security.json_max_depth is a 400 naming the limit.
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let res = app
        .client
        .post(app.url("/api/articles"))
        .header("content-type", "application/json")
        .body(format!("{{\"title\": {deep}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("deeper than 32"));
    app.stop().await.unwrap();

    // Behind a TLS proxy: HSTS and Secure cookies. With CORS origins: only those.
    let app = spawn_app_with(|c| {
        c.security.behind_tls_proxy = true;
        c.security.cors_origins = vec!["https://app.example.org".into()];
    })
    .await;
    user_with_token(&app, "tls@test.example", Role::Viewer).await;
    let res = login(&app, "tls@test.example", PASSWORD, None).await;
    assert!(res.headers().contains_key("strict-transport-security"));
    assert!(set_cookie(&res).unwrap().contains("Secure"));
    for (origin, allowed) in [
        ("https://app.example.org", true),
        ("https://evil.example", false),
    ] {
        let res = app
            .anon
            .request(Method::OPTIONS, app.url("/api/articles"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers().contains_key("access-control-allow-origin"),
            allowed,
            "{origin}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn public_read_off_closes_everything_but_probes_and_sign_in() {
    let app = spawn_app_with(|c| c.security.public_read = false).await;
    for path in ["/api/articles", "/api/search?q=x", "/api/articles/1"] {
        let res = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    assert_eq!(
        app.anon
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.anon
            .get(app.url("/api/auth/setup"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/articles").await.status(),
        200,
        "signed in: allowed"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn no_endpoint_returns_a_password_hash_and_tokens_are_shown_once() {
    let app = spawn_app_with(|_| {}).await;
    user_with_token(&app, "h@test.example", Role::Editor).await;
    let (s, created) = app
        .post(
            "/api/auth/tokens",
            json!({"name": "ci", "role": "viewer", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("apl_"));
    let (s, v) = app
        .post("/api/auth/tokens", json!({"name": "x", "user_id": 99999}))
        .await;
    assert_eq!(s, 404, "{v}");
    let mut bodies = Vec::new();
    for path in [
        "/api/admin/users",
        "/api/auth/me",
        "/api/auth/tokens?all=true",
        "/api/admin/audit?limit=500",
    ] {
        let (s, v) = app.get_json(path).await;
        assert_eq!(s, 200, "{path}");
        bodies.push(v.to_string());
    }
    let login = login(&app, "h@test.example", PASSWORD, None)
        .await
        .text()
        .await
        .unwrap();
    bodies.push(login);
    for b in &bodies {
        assert!(
            !b.contains("$argon2") && !b.contains("password_hash") && !b.contains("secret_hash"),
            "{b}"
        );
        assert!(
            !b.contains(&secret) && !b.contains(&app.token),
            "a token leaked: {b}"
        );
    }
    let listed: HashMap<String, Value> =
        serde_json::from_str::<Value>(&bodies[2]).unwrap()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
            .collect();
    assert_eq!(listed["ci"]["role"], "viewer");
    assert!(listed["ci"]["expires_at"].is_string());
    // Tokens are capped at the creator's role.
    let viewer = client_with_token(&secret);
    let res = viewer
        .post(app.url("/api/auth/tokens"))
        .json(&json!({"name": "up", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_general_and_expensive_limits_answer_429_per_client() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.general_per_second = 1;
        c.rate_limit.general_burst = 3;
        c.rate_limit.expensive_per_minute = 1;
        c.rate_limit.expensive_burst = 1;
    })
    .await;
    // Expensive: one search, then 429 (the general budget is not yet spent).
    assert_eq!(
        app.anon
            .get(app.url("/api/search?q=x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app
        .anon
        .get(app.url("/api/search?q=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // General: the burst of 3 is spent by now (2 searches + this), then 429 everywhere,
    // fallbacks included.
    let mut codes = Vec::new();
    for path in ["/health", "/health", "/api/nope"] {
        codes.push(
            app.anon
                .get(app.url(path))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(codes, [200, 429, 429], "{codes:?}");
    let v: Value = app
        .anon
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_to_the_identity_apis_is_a_4xx_naming_the_problem() {
    let app = spawn_app_with(|_| {}).await;
    let field = |v: &Value| {
        v["error"]["fields"][0]["field"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // The test admin's email, in other case: taken.
    let (s, v) = app
        .post(
            "/api/admin/users",
            json!({"email": common::ADMIN_EMAIL.to_uppercase(), "role": "viewer"}),
        )
        .await;
    assert_eq!((s, field(&v)), (409, "email".into()), "{v}");
    let (s, v) = app
        .post(
            "/api/admin/users",
            json!({"email": "no-at-sign", "role": "viewer"}),
        )
        .await;
    assert_eq!((s, field(&v)), (422, "email".into()), "{v}");
    let (s, v) = app
        .post(
            "/api/admin/users",
            json!({"email": "w@test.example", "role": "viewer", "password": "password1234"}),
        )
        .await;
    assert_eq!((s, field(&v)), (422, "password".into()), "{v}");
    let (s, v) = app
        .post(
            "/api/admin/users",
            json!({"email": "r@test.example", "role": "root"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(field(&v), "role", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("viewer, editor, admin"),
        "{v}"
    );
    let (s, v) = app.patch("/api/admin/users/1", json!({})).await;
    assert_eq!(s, 422, "{v}");
    let (s, _) = app
        .patch("/api/admin/users/99999", json!({"role": "viewer"}))
        .await;
    assert_eq!(s, 404);
    let (s, v) = app
        .get_json("/api/admin/audit?limit=0&since=yesterday")
        .await;
    assert_eq!(s, 422, "{v}");
    let mut fields: Vec<String> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    fields.sort();
    assert_eq!(fields, ["limit", "since"]);
    let (s, v) = app
        .post(
            "/api/auth/reset-password",
            json!({"token": "not-a-link", "password": "a fine long passphrase"}),
        )
        .await;
    assert_eq!(s, 401, "{v}");
    // The JSON extractor: a wrong content type and broken JSON.
    let res = app
        .client
        .post(app.url("/api/auth/tokens"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = app
        .client
        .post(app.url("/api/auth/tokens"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    app.stop().await.unwrap();
}

/// Every bad input gets an answer that names the field and what it must be, and never
/// repeats more than a short escaped prefix of what was sent (before: 1.1 MB values came
/// back whole, or degraded the answer to a bare "unprocessable entity" without fields).
#[tokio::test]
async fn bad_input_answers_name_the_field_and_never_repeat_the_value() {
    let app = common::spawn_app().await;
    let junk = "Zq".repeat(550_000);
    let run = &junk[..200];
    let small = |what: &str, s: u16, v: &Value| {
        let text = v.to_string();
        assert!(
            text.len() < 4096,
            "{what}: {s} answer of {} bytes",
            text.len()
        );
        assert!(
            !text.contains(run),
            "{what}: the value is repeated: {}",
            &text[..300.min(text.len())]
        );
    };
    let field_of = |v: &Value| {
        v["error"]["fields"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // Bodies: an unknown key, a bad value, a wrong type, on typed and untyped bodies.
    let cases: Vec<(&str, reqwest::Method, &str, Value)> = vec![
        (
            "unknown article key",
            reqwest::Method::POST,
            "/api/articles",
            json!({"title": "t", "body": "b", junk.clone(): 1}),
        ),
        (
            "article status",
            reqwest::Method::POST,
            "/api/articles",
            json!({"title": "t", "body": "b", "status": junk}),
        ),
        (
            "user role",
            reqwest::Method::PATCH,
            "/api/admin/users/1",
            json!({"role": junk}),
        ),
        (
            "unknown user key",
            reqwest::Method::PATCH,
            "/api/admin/users/1",
            json!({junk.clone(): true}),
        ),
        (
            "preview key",
            reqwest::Method::POST,
            "/api/articles/preview",
            json!({"body": "x", junk.clone(): 1}),
        ),
        (
            "token name type",
            reqwest::Method::POST,
            "/api/auth/tokens",
            json!({"name": 5, junk.clone(): 1}),
        ),
        (
            "login email",
            reqwest::Method::POST,
            "/api/auth/login",
            json!({"email": junk, "password": "pw"}),
        ),
    ];
    for (what, method, path, body) in cases {
        let (s, v) = app.send_json(method, path, body).await;
        assert!((400..500).contains(&s), "{what}: {s} {v}");
        small(what, s, &v);
        if s == 422 {
            assert!(!field_of(&v).is_empty(), "{what}: no field named: {v}");
        }
    }

    // Valid JSON of the wrong type names the field and the type, never a parser message.
    let (s, v) = app
        .patch("/api/admin/users/1", json!({"role": 12345}))
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(field_of(&v), "role", "{v}");
    let message = v["error"]["fields"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("must be") && message.contains("integer"),
        "{v}"
    );
    assert!(!v.to_string().contains("Failed to parse"), "{v}");
    let (s, v) = app
        .post("/api/articles/preview", json!({"body": "x", "colour": 1}))
        .await;
    assert_eq!((s, field_of(&v).as_str()), (422, "colour"), "{v}");

    // Bad query parameters: one status everywhere, naming the parameter.
    for (path, field) in [
        ("/api/admin/audit?limit=abc", "limit"),
        ("/api/admin/audit?colour=red", "colour"),
        ("/api/admin/errors?severity=dire", "severity"),
        ("/api/auth/tokens?all=maybe", "all"),
        ("/api/auth/tokens?colour=red", "colour"),
        ("/api/articles?limit=0", "limit"),
        ("/api/search?q=x&limit=0", "limit"),
        ("/api/search?q=x&colour=red", "colour"),
    ] {
        let (s, v) = app.get_json(path).await;
        assert_eq!(s, 422, "{path}: {v}");
        assert_eq!(v["error"]["code"], "invalid_input", "{path}: {v}");
        assert_eq!(field_of(&v), field, "{path}: {v}");
    }
    let long = format!("/api/admin/audit?{}=1", "k".repeat(5000));
    let (s, v) = app.get_json(&long).await;
    assert_eq!(s, 422);
    assert!(field_of(&v).len() < 100, "{v}");
    let (s, v) = app
        .get_json(&format!("/api/articles/{}", "s".repeat(5000)))
        .await;
    assert_eq!(s, 404);
    assert!(v.to_string().len() < 1024, "{v}");
    app.stop().await.unwrap();
}

/// Before: one wrong password every 90 s from anywhere kept an account locked, its owner
/// included, and refusals by the per-address sign-in limit were only log lines.
#[tokio::test]
async fn a_lockout_spares_the_owners_address_and_session_and_refusals_are_audited_in_aggregate() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_per_15_min = 3;
        c.security.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    user_with_token(&app, "owner@test.example", Role::Viewer).await;
    let login = |ip: &str, password: &str, cookie: &str| {
        let mut req = app
            .anon
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "owner@test.example", "password": password}));
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        async move { req.send().await.unwrap() }
    };
    let attempt = |ip: &str, password: &str| {
        let res = login(ip, password, "");
        async move { res.await.status().as_u16() }
    };
    // The owner signs in from home, and keeps the session cookie.
    let res = login("192.0.2.7", PASSWORD, "").await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // Successful sign-ins spend nothing (before, they shared the budget with failures and
    // an admin was locked out after a dozen normal actions and one typo).
    for _ in 0..6 {
        assert_eq!(attempt("192.0.2.7", PASSWORD).await, 200);
    }
    // Someone elsewhere spends the account's budget, from addresses under their own limit.
    assert_eq!(attempt("198.51.100.1", "wrong password!!").await, 401);
    assert_eq!(attempt("198.51.100.2", "wrong password!!").await, 401);
    assert_eq!(attempt("198.51.100.3", "wrong password!!").await, 401);
    // Locked for strangers, even with the right password...
    assert_eq!(attempt("203.0.113.9", PASSWORD).await, 429);
    // ...but not from the owner's address, nor for the owner's own session elsewhere.
    assert_eq!(attempt("192.0.2.7", PASSWORD).await, 200);
    let res = login("203.0.113.50", PASSWORD, &cookie).await;
    assert_eq!(res.status(), 200);

    // One address over the sign-in limit (3 failures, on another account): its
    // refusals make one aggregated audit entry, and say so in plain words.
    user_with_token(&app, "bystander@test.example", Role::Viewer).await;
    for i in 0..8 {
        let res = app
            .anon
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", "198.51.100.99")
            .json(&json!({"email": "bystander@test.example", "password": "wrong password!!"}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert_eq!(status, if i < 3 { 401 } else { 429 }, "attempt {i}");
        if status == 429 {
            let v: Value = res.json().await.unwrap();
            let m = v["error"]["message"].as_str().unwrap();
            assert!(
                m.contains("Too many failed attempts from your address") && !m.contains("/api/"),
                "{m}"
            );
        }
    }
    let (_, v) = app
        .get_json("/api/admin/audit?action=auth.rate_limited&limit=100")
        .await;
    let entries = v["entries"].as_array().unwrap();
    let from: Vec<&Value> = entries
        .iter()
        .filter(|e| e["ip"] == "198.51.100.99")
        .collect();
    assert_eq!(from.len(), 1, "one entry for the burst: {v}");
    assert_eq!(from[0]["outcome"], "denied");
    assert_eq!(from[0]["target"], "/api/auth/login");
    assert_eq!(from[0]["details"]["refused"], 1, "{v}");
    // One lockout entry per account locked (the owner's, and the bystander's).
    let (_, v) = app.get_json("/api/admin/audit?action=auth.lockout").await;
    let targets: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["bystander@test.example", "owner@test.example"],
        "{v}"
    );
    app.stop().await.unwrap();
}
