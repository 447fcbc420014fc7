//! The admin console (SPEC §8): in a real browser (headless Chromium through
//! chromedriver), and its cookie and CSRF rules over plain HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and a headless Chromium session, or `None` (with a
/// message) on a machine without them: `.ci/run` installs both.
async fn browser() -> Option<(Driver, Client)> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        eprintln!("skipped: install chromium and chromium-driver to run the browser tests");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,1000"]
        }
    });
    let mut last_error = String::new();
    for _ in 0..100 {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start: {last_error}");
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

/// Waits (up to 10 s) for an element, as a page that is still loading
/// after a click may not have it yet; panics with the page when it never
/// comes.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "no {css} on {}: {e}\n{}",
            c.current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default(),
            c.source().await.unwrap_or_default()
        ),
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

/// Saves a screenshot under `target/screenshots/` (the README's pictures
/// come from here).
async fn snap(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = repo_path("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(app: &TestApp, c: &Client) {
    c.goto(&app.url("/admin/")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login"),
        "not signed in yet"
    );
    fill(c, "#token", &app.admin_token).await;
    click(c, "#sign-in").await;
    // The dashboard may still be loading when the click returns.
    let mut url = c.current_url().await.unwrap();
    for _ in 0..100 {
        if url.path() == "/admin/" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        url = c.current_url().await.unwrap();
    }
    assert_eq!(
        url.path(),
        "/admin/",
        "{url}: {}",
        c.source().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn an_admin_runs_the_gateway_from_the_console_in_a_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    seed(&app).await;
    sign_in(&app, &c).await;
    snap(&c, "dashboard").await;

    // Auto-provisioning on: an unknown email is created.
    app.open(&app.token().email("first@acme.example").sign(), "sales")
        .await;

    // Flip auto-provisioning off in the settings page.
    c.goto(&app.url("/admin/settings")).await.unwrap();
    let checkbox = c.find(Locator::Css("#auto_provisioning")).await.unwrap();
    assert!(checkbox.is_selected().await.unwrap());
    checkbox.click().await.unwrap();
    snap(&c, "settings").await;
    click(&c, "#save-settings").await;
    assert!(text_of(&c, "p.notice").await.contains("Settings saved"));
    let res = app
        .handshake(&app.token().email("second@acme.example").sign(), "sales")
        .await;
    assert_error(res, 403, "user_not_provisioned").await;
    assert_eq!(
        app.admin().get("/settings").await["auto_provisioning"],
        false
    );

    // Create a team, then grant it a workbook.
    c.goto(&app.url("/admin/teams")).await.unwrap();
    fill(&c, "#team-name", "acme-auditors").await;
    click(&c, "#create-team").await;
    assert!(text_of(&c, "p.notice").await.contains("acme-auditors"));
    c.goto(&app.url("/admin/workbooks")).await.unwrap();
    c.find(Locator::Css("#grant-team"))
        .await
        .unwrap()
        .select_by_value("acme-auditors")
        .await
        .unwrap();
    c.find(Locator::Css("#grant-target"))
        .await
        .unwrap()
        .select_by_value("workbook:orders")
        .await
        .unwrap();
    click(&c, "#create-grant").await;
    assert!(text_of(&c, "p.notice").await.contains("Grant"));
    snap(&c, "workbooks").await;
    let grants = app.admin().get("/grants?team=acme-auditors").await;
    assert_eq!(grants[0]["workbook"], "orders");

    // Explain why the provisioned user may open sales.
    c.goto(&app.url("/admin/explain")).await.unwrap();
    fill(&c, "#explain-email", "first@acme.example").await;
    c.find(Locator::Css("#explain-workbook"))
        .await
        .unwrap()
        .select_by_value("sales")
        .await
        .unwrap();
    click(&c, "#explain-go").await;
    let explanation = text_of(&c, "#explanation").await;
    assert!(explanation.contains("Allowed"), "{explanation}");
    assert!(explanation.contains("acme-analysts"), "{explanation}");
    snap(&c, "explain").await;

    // The token inspector checks without consuming the jti.
    let token = app.token().email("first@acme.example").sign();
    c.goto(&app.url("/admin/inspect")).await.unwrap();
    fill(&c, "#token", &token).await;
    click(&c, "#inspect-go").await;
    let inspection = text_of(&c, "#inspection").await;
    assert!(inspection.contains("Valid"), "{inspection}");
    assert!(inspection.contains("signature"), "{inspection}");
    snap(&c, "inspector").await;
    app.open(&token, "sales").await;

    // The audit log shows the denial.
    c.goto(&app.url("/admin/audit?outcome=denied"))
        .await
        .unwrap();
    assert!(c.source().await.unwrap().contains("user_not_provisioned"));
    snap(&c, "audit").await;

    // Sign out: the console asks for a token again.
    click(&c, "#sign-out").await;
    c.goto(&app.url("/admin/settings")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login")
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_sandbox_signs_a_url_and_shows_the_workbook_in_a_frame() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    seed(&app).await;
    // Let the console's own origin frame Acme's content.
    let origin = app.address.clone();
    app.admin()
        .post(
            "/clients",
            json!({"client_id": "console-test", "name": "Console test",
            "allowed_origins": [origin], "allow_internal_users": true}),
        )
        .await;
    sign_in(&app, &c).await;
    c.goto(&app.url("/admin/sandbox")).await.unwrap();
    c.find(Locator::Css("select[name=client_id]"))
        .await
        .unwrap()
        .select_by_value("console-test")
        .await
        .unwrap();
    fill(&c, "input[name=email]", "sandbox@acme.example").await;
    fill(&c, "input[name=teams]", "acme-analysts").await;
    c.find(Locator::Css("select[name=workbook]"))
        .await
        .unwrap()
        .select_by_value("sales")
        .await
        .unwrap();
    click(&c, "#sandbox-go").await;
    let url = text_of(&c, "#sandbox-url").await;
    assert!(url.starts_with("/embed/workbooks/"), "{url}");
    let frame = c.find(Locator::Css("#sandbox-frame")).await.unwrap();
    frame.enter_frame().await.unwrap();
    let body = c
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("sales"),
        "the workbook rendered in the frame: {body}"
    );
    c.enter_parent_frame().await.unwrap();
    snap(&c, "sandbox").await;
    assert_eq!(
        app.admin().user("sandbox@acme.example").await["kind"],
        "embed"
    );
    c.close().await.unwrap();
}

// ---- without a browser -------------------------------------------------------

async fn console_cookie(app: &TestApp) -> String {
    let res = app
        .http
        .post(app.url("/admin/login"))
        .form(&[("token", app.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "embedgate_admin=",
        "Path=/admin",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
    ] {
        assert!(set.contains(part), "{part} missing in {set}");
    }
    assert!(
        !set.contains(&app.admin_token),
        "the cookie never holds the token"
    );
    set.split(';').next().unwrap().to_owned()
}

async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let html = app
        .http
        .get(app.url("/admin/settings"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app).await;
    let before = app.admin().get("/settings").await;
    for body in [
        vec![
            ("default_account_type", "Viewer"),
            ("company_attribute", "company"),
        ],
        vec![
            ("csrf", "forged"),
            ("default_account_type", "Viewer"),
            ("company_attribute", "company"),
        ],
        vec![
            ("csrf", ""),
            ("default_account_type", "Viewer"),
            ("company_attribute", "company"),
        ],
    ] {
        let res = app
            .http
            .post(app.url("/admin/settings"))
            .header("Cookie", &cookie)
            .header("Origin", "https://evil.example")
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    assert_eq!(app.admin().get("/settings").await, before);
    // With the token it works.
    let csrf = csrf_of(&app, &cookie).await;
    let res = app
        .http
        .post(app.url("/admin/settings"))
        .header("Cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("default_account_type", "Viewer"),
            ("company_attribute", "company"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.admin().get("/settings").await["auto_provisioning"],
        false
    );
}

#[tokio::test]
async fn console_pages_need_a_signed_in_admin() {
    let app = spawn_app().await;
    for path in [
        "/admin/",
        "/admin/settings",
        "/admin/users",
        "/admin/clients",
        "/admin/audit",
        "/admin/sandbox",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/admin/login", "{path}");
    }
    // A forged or foreign cookie is not a sign-in.
    let res = app
        .http
        .get(app.url("/admin/"))
        .header("Cookie", "embedgate_admin=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // An embed session never signs anyone in to the console.
    seed(&app).await;
    let session = app.open(&app.token().sign(), "sales").await;
    let res = app
        .http
        .get(app.url("/admin/"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn a_wrong_token_does_not_sign_in() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/admin/login"))
        .form(&[("token", "ega_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/login?error=")
    );
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_deleted_admin_token_ends_its_console_sessions() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app).await;
    let ok = app
        .http
        .get(app.url("/admin/"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "DENY");
    assert!(
        ok.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // Sessions expire with the clock.
    app.clock.advance_secs(8 * 3600 + 1);
    let expired = app
        .http
        .get(app.url("/admin/"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 303);
}

#[tokio::test]
async fn a_new_client_secret_is_shown_once_in_the_console() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app).await;
    let csrf = csrf_of(&app, &cookie).await;
    let html = app
        .http
        .post(app.url("/admin/clients"))
        .header("Cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("client_id", "made-in-console"),
            ("name", "Made in console"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("id=\"shown-secret\">").unwrap() + "id=\"shown-secret\">".len();
    let secret = html[start..start + html[start..].find('<').unwrap()].to_owned();
    assert!(secret.starts_with("egs_") && secret.len() >= 43, "{secret}");
    let list = app
        .http
        .get(app.url("/admin/clients"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("made-in-console"));
    assert!(
        !list.contains(&secret),
        "the list never shows the secret again"
    );
    assert!(
        !app.admin()
            .audit("")
            .await
            .iter()
            .any(|e| e.to_string().contains(&secret))
    );
}
