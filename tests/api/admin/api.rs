//! The admin REST API (SPEC §8): bearer auth, settings, embed clients,
//! teams, users, account types, workspaces, workbooks, grants, the audit log
//! and `explain`.

use embedgate::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;
use crate::helpers::*;

// ---- helpers -------------------------------------------------------------

async fn seeded() -> TestApp {
    let app = spawn_app().await;
    seed(&app).await;
    app
}

/// An admin request (with the admin token) that must fail with `status`
/// and the JSON error `code`.
async fn refused(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) {
    let res = app.admin().send(method.clone(), path, body.clone()).await;
    let actual = res.status().as_u16();
    let has_cookie = res.headers().get("set-cookie").is_some();
    let text = res.text().await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(
        (actual, json["error"]["code"].as_str()),
        (status, Some(code)),
        "{method} {path} with body {body:?}: {text}"
    );
    assert!(!has_cookie, "{method} {path}: an error sets no cookie");
}

/// An admin request (with the admin token) with a raw body and content type.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut r = app
        .http
        .request(method, app.url(&format!("/admin/api{path}")))
        .bearer_auth(&app.admin_token);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    r.body(body.to_owned()).send().await.unwrap()
}

/// A raw, non-JSON body that must be refused with `400 validation_failed`.
async fn refused_raw(app: &TestApp, method: Method, path: &str, body: &str) {
    let res = send_raw(
        app,
        method.clone(),
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    let actual = res.status().as_u16();
    let text = res.text().await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(
        (actual, json["error"]["code"].as_str()),
        (400, Some("validation_failed")),
        "{method} {path} with raw body {body:?}: {text}"
    );
}

async fn user_id_of(app: &TestApp, email: &str) -> i64 {
    let user = app.admin().user(email).await;
    user["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no user {email}: {user}"))
}

async fn team_id_of(app: &TestApp, name: &str) -> i64 {
    let teams = app.admin().get("/teams").await;
    teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no team {name} in {teams}"))
}

/// Asserts that a session request works (200).
async fn session_works(app: &TestApp, cookie: &str, workbook: &str) {
    let res = session_get(app, cookie, workbook).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "session on {workbook}: {text}");
}

/// Asserts that a session request fails with `status` and `code`.
async fn session_fails(app: &TestApp, cookie: &str, workbook: &str, status: u16, code: &str) {
    assert_error(session_get(app, cookie, workbook).await, status, code).await;
}

/// Asserts that a handshake succeeds (303).
async fn handshake_works(app: &TestApp, token: &str, workbook: &str) {
    let res = app.handshake(token, workbook).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(status, 303, "handshake on {workbook}: {text}");
}

/// The names of a workbook's tags, whether `tags` is an object keyed by tag
/// or a list.
fn tag_names(workbook: &Value) -> Vec<String> {
    let mut names: Vec<String> = match &workbook["tags"] {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(list) => list
            .iter()
            .map(|t| {
                t.as_str()
                    .or_else(|| t["tag"].as_str())
                    .or_else(|| t["name"].as_str())
                    .unwrap_or_else(|| panic!("a tag without a name: {t}"))
                    .to_owned()
            })
            .collect(),
        other => panic!("tags must be a list or an object, not {other}"),
    };
    names.sort();
    names
}

/// The source of one tag of a workbook.
fn tag_source(workbook: &Value, tag: &str) -> Value {
    match &workbook["tags"] {
        Value::Object(m) => m.get(tag).cloned().unwrap_or(Value::Null),
        Value::Array(list) => list
            .iter()
            .find(|t| t["tag"] == tag || t["name"] == tag)
            .map(|t| t["source"].clone())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn template(name: &str) -> Value {
    json!({"type": "template", "template": name})
}

fn by_id(list: &Value, id: &Value) -> Value {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {list}"))
        .iter()
        .find(|v| &v["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn sorted_strings(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---- auth ------------------------------------------------------------------

#[tokio::test]
async fn every_admin_endpoint_refuses_requests_without_a_valid_bearer_token() {
    let app = seeded().await;
    let admin = app.admin();
    let cookie = app.open(&app.token().sign(), "sales").await;
    session_works(&app, &cookie, "sales").await;
    let ana = user_id_of(&app, "ana@acme.example").await;
    let staff = team_id_of(&app, "staff").await;
    let archive = admin.post("/workspaces", json!({"name": "archive"})).await["id"]
        .as_i64()
        .unwrap();
    admin
        .post(
            "/account-types",
            json!({"name": "Analyst", "permissions": ["view"]}),
        )
        .await;
    let grant = admin.get("/grants").await[0]["id"].as_i64().unwrap();
    let before = snapshot(&app).await;

    // Real ids and valid bodies: each request would change something if it
    // were let through.
    let endpoints: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/settings".into(), None),
        (
            Method::PATCH,
            "/settings".into(),
            Some(json!({"auto_provisioning": false})),
        ),
        (Method::GET, "/clients".into(), None),
        (
            Method::POST,
            "/clients".into(),
            Some(json!({"name": "Intruder"})),
        ),
        (Method::GET, format!("/clients/{GLOBEX_CLIENT}"), None),
        (Method::DELETE, format!("/clients/{GLOBEX_CLIENT}"), None),
        (
            Method::POST,
            format!("/clients/{ACME_CLIENT}/rotate"),
            Some(json!({"grace_secs": 0})),
        ),
        (Method::GET, "/teams".into(), None),
        (
            Method::POST,
            "/teams".into(),
            Some(json!({"name": "intruders"})),
        ),
        (Method::GET, format!("/teams/{staff}"), None),
        (
            Method::PATCH,
            format!("/teams/{staff}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/teams/{staff}"), None),
        (Method::GET, "/users".into(), None),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"email": "mallory@evil.example"})),
        ),
        (Method::GET, format!("/users/{ana}"), None),
        (
            Method::PATCH,
            format!("/users/{ana}"),
            Some(json!({"status": "deactivated"})),
        ),
        (Method::DELETE, format!("/users/{ana}"), None),
        (Method::POST, format!("/users/{ana}/revoke-sessions"), None),
        (Method::GET, "/account-types".into(), None),
        (
            Method::POST,
            "/account-types".into(),
            Some(json!({"name": "Evil", "permissions": ["view"]})),
        ),
        (Method::GET, "/account-types/Analyst".into(), None),
        (
            Method::PATCH,
            "/account-types/Analyst".into(),
            Some(json!({"permissions": ["view", "edit"]})),
        ),
        (Method::DELETE, "/account-types/Analyst".into(), None),
        (Method::GET, "/workspaces".into(), None),
        (
            Method::POST,
            "/workspaces".into(),
            Some(json!({"name": "evil"})),
        ),
        (Method::GET, format!("/workspaces/{archive}"), None),
        (Method::DELETE, format!("/workspaces/{archive}"), None),
        (Method::GET, "/workbooks".into(), None),
        (
            Method::POST,
            "/workbooks".into(),
            Some(
                json!({"id": "intruder", "name": "Intruder", "source": template("inventory.html")}),
            ),
        ),
        (Method::GET, "/workbooks/inventory".into(), None),
        (
            Method::PATCH,
            "/workbooks/inventory".into(),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, "/workbooks/inventory".into(), None),
        (
            Method::PUT,
            "/workbooks/sales/tags/v3".into(),
            Some(json!({"source": template("sales.html")})),
        ),
        (Method::DELETE, "/workbooks/sales/tags/v2".into(), None),
        (Method::GET, "/grants".into(), None),
        (
            Method::POST,
            "/grants".into(),
            Some(json!({"team": "staff", "workbook": "sales", "level": "edit"})),
        ),
        (Method::GET, format!("/grants/{grant}"), None),
        (Method::DELETE, format!("/grants/{grant}"), None),
        (Method::GET, "/audit?limit=5".into(), None),
        (
            Method::GET,
            "/explain?email=ana@acme.example&workbook=sales".into(),
            None,
        ),
    ];
    assert!(endpoints.len() >= 38, "{}", endpoints.len());

    let token = app.admin_token.clone();
    let credentials: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no Authorization header", vec![]),
        (
            "a wrong bearer token",
            vec![("Authorization", "Bearer not-an-admin-token".into())],
        ),
        (
            "the admin token with one more character",
            vec![("Authorization", format!("Bearer {token}x"))],
        ),
        ("an empty bearer", vec![("Authorization", "Bearer ".into())]),
        ("the scheme alone", vec![("Authorization", "Bearer".into())]),
        (
            "the token without a scheme",
            vec![("Authorization", token.clone())],
        ),
        (
            "Basic with the real token",
            vec![("Authorization", format!("Basic {token}"))],
        ),
        ("an embed session cookie", vec![("Cookie", cookie.clone())]),
        (
            "the token in a cookie",
            vec![(
                "Cookie",
                format!("embedgate_admin={token}; admin_token={token}; token={token}"),
            )],
        ),
    ];

    for (method, path, body) in &endpoints {
        for (what, headers) in &credentials {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let res =
                admin_without_bearer(&app, method.clone(), path, &headers, body.clone()).await;
            let status = res.status().as_u16();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let has_cookie = res.headers().get("set-cookie").is_some();
            let text = res.text().await.unwrap();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(
                (status, json["error"]["code"].as_str()),
                (401, Some("unauthorized")),
                "{method} {path} with {what}: {text}"
            );
            let challenge = challenge.unwrap_or_default();
            assert!(
                challenge.split_whitespace().next() == Some("Bearer"),
                "{method} {path} with {what}: WWW-Authenticate {challenge:?}"
            );
            assert!(!has_cookie, "{method} {path} with {what}: no Set-Cookie");
        }
    }

    assert_eq!(snapshot(&app).await, before, "nothing changed");
    session_works(&app, &cookie, "sales").await;
    handshake_works(&app, &app.token().sign(), "sales").await;
}

#[tokio::test]
async fn the_openapi_document_needs_no_token() {
    let app = spawn_app().await;
    let res = admin_without_bearer(&app, Method::GET, "/openapi.json", &[], None).await;
    assert_ne!(res.status().as_u16(), 401, "the OpenAPI document is public");
    assert!(res.headers().get("www-authenticate").is_none());
    let res = admin_without_bearer(&app, Method::POST, "/openapi.json", &[], Some(json!({}))).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unknown_admin_path_is_a_json_404_not_found() {
    let app = seeded().await;
    let staff = team_id_of(&app, "staff").await;
    for path in [
        "/no-such-thing".to_owned(),
        "/teams/{staff}/members".replace("{staff}", &staff.to_string()),
        "/settings/auto_provisioning".to_owned(),
        "/".to_owned(),
    ] {
        let res = app.admin().send(Method::GET, &path, None).await;
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
        assert_error(res, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_bearer_scheme_in_any_case_is_accepted() {
    let app = spawn_app().await;
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let value = format!("{scheme} {}", app.admin_token);
        let res = admin_without_bearer(
            &app,
            Method::GET,
            "/settings",
            &[("Authorization", value.as_str())],
            None,
        )
        .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "{scheme}: {text}");
        let settings: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(settings["default_account_type"], "Viewer");
    }
}

// ---- settings ------------------------------------------------------------

fn default_settings() -> Value {
    json!({
        "auto_provisioning": true,
        "default_account_type": "Viewer",
        "company_separation": {"enabled": false, "attribute": "company"}
    })
}

#[tokio::test]
async fn settings_have_the_contract_defaults_exactly() {
    let app = spawn_app().await;
    assert_eq!(app.admin().get("/settings").await, default_settings());
    // Seeding changes no setting.
    seed(&app).await;
    assert_eq!(app.admin().get("/settings").await, default_settings());
}

#[tokio::test]
async fn patching_settings_merges_and_returns_the_whole_settings() {
    let app = spawn_app().await;
    let admin = app.admin();
    let got = admin
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;
    assert_eq!(
        got,
        json!({
            "auto_provisioning": true,
            "default_account_type": "Viewer",
            "company_separation": {"enabled": true, "attribute": "company"}
        })
    );
    let got = admin
        .settings(json!({"company_separation": {"attribute": "org"}}))
        .await;
    assert_eq!(
        got["company_separation"],
        json!({"enabled": true, "attribute": "org"})
    );
    let got = admin
        .settings(json!({"auto_provisioning": false, "default_account_type": "Explorer"}))
        .await;
    let expected = json!({
        "auto_provisioning": false,
        "default_account_type": "Explorer",
        "company_separation": {"enabled": true, "attribute": "org"}
    });
    assert_eq!(got, expected);
    assert_eq!(admin.get("/settings").await, expected);

    let changes = admin.audit("event=settings_changed").await.len();
    assert_eq!(admin.settings(json!({})).await, expected);
    assert_eq!(
        admin.settings(json!({"company_separation": {}})).await,
        expected
    );
    assert_eq!(admin.get("/settings").await, expected);
    assert_eq!(
        admin.audit("event=settings_changed").await.len(),
        changes,
        "an empty patch changes nothing"
    );
}

#[tokio::test]
async fn invalid_settings_patches_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let before = app.admin().get("/settings").await;
    for body in [
        json!({"auto_provision": false}),
        json!({"auto_provisioning": "no"}),
        json!({"auto_provisioning": 0}),
        json!({"default_account_type": 5}),
        json!({"default_account_type": "Wizard"}),
        json!({"default_account_type": ""}),
        json!({"company_separation": true}),
        json!({"company_separation": {"enabled": "yes"}}),
        json!({"company_separation": {"colour": "red"}}),
        json!({"company_separation": {"attribute": "bad-name"}}),
        json!({"company_separation": {"attribute": ""}}),
        json!({"company_separation": {"attribute": "x".repeat(65)}}),
        json!({"auto_provisioning": false, "default_account_type": "Wizard"}),
        json!({"auto_provisioning": false, "company_separation": {"attribute": "a b"}}),
        json!({"auto_provisioning": false, "bogus": 1}),
        json!([]),
        json!("auto_provisioning"),
    ] {
        refused(
            &app,
            Method::PATCH,
            "/settings",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::PATCH, "/settings", "auto_provisioning=false").await;
    refused_raw(
        &app,
        Method::PATCH,
        "/settings",
        "{\"auto_provisioning\": false",
    )
    .await;
    assert_eq!(app.admin().get("/settings").await, before);
    assert!(app.admin().audit("event=settings_changed").await.is_empty());
}

#[tokio::test]
async fn settings_survive_a_restart() {
    let app = spawn_app().await;
    let patched = app
        .admin()
        .settings(json!({
            "auto_provisioning": false,
            "default_account_type": "Creator",
            "company_separation": {"enabled": true, "attribute": "org"}
        }))
        .await;
    let app = app.restart().await;
    assert_eq!(app.admin().get("/settings").await, patched);
    assert_eq!(patched["default_account_type"], "Creator");
}

#[tokio::test]
async fn a_settings_change_is_audited_with_old_and_new_values() {
    let app = spawn_app().await;
    app.admin()
        .settings(json!({"auto_provisioning": false}))
        .await;
    let entries = app.admin().audit("event=settings_changed").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let note = entries[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("auto_provisioning: true -> false"),
        "{note:?}"
    );
    assert_eq!(entries[0]["outcome"], "allowed");

    app.admin()
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;
    let entries = app.admin().audit("event=settings_changed").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let note = entries[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("company_separation.enabled: false -> true"),
        "{note:?}"
    );
    assert!(
        !note.contains("auto_provisioning"),
        "only what changed: {note:?}"
    );
}

#[tokio::test]
async fn a_settings_change_takes_effect_on_the_next_handshake() {
    let app = seeded().await;
    handshake_works(&app, &app.token().email("nia@acme.example").sign(), "sales").await;
    app.admin()
        .settings(json!({"auto_provisioning": false}))
        .await;
    handshake_fails(
        &app,
        &app.token().email("ned@acme.example").sign(),
        "sales",
        403,
        "user_not_provisioned",
    )
    .await;
    assert_eq!(app.admin().user("ned@acme.example").await, Value::Null);
    // Existing users are still let in.
    handshake_works(&app, &app.token().email("nia@acme.example").sign(), "sales").await;
    app.admin()
        .settings(json!({"auto_provisioning": true}))
        .await;
    handshake_works(&app, &app.token().email("ned@acme.example").sign(), "sales").await;
}

// ---- clients -------------------------------------------------------------

#[tokio::test]
async fn creating_a_client_answers_201_with_a_generated_secret_shown_once() {
    let app = spawn_app().await;
    let admin = app.admin();
    let first = admin.post("/clients", json!({"name": "Intranet"})).await;
    for key in [
        "client_id",
        "name",
        "algorithm",
        "allowed_origins",
        "allowed_teams",
        "allow_internal_users",
        "status",
        "secret",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    let id = first["client_id"].as_str().expect("a generated client_id");
    assert!(!id.is_empty());
    assert_eq!(first["name"], "Intranet");
    assert_eq!(first["algorithm"], "HS256");
    assert_eq!(first["allowed_origins"], json!([]));
    assert_eq!(first["allowed_teams"], json!([]));
    assert_eq!(first["allow_internal_users"], false);
    assert_eq!(first["status"], "active");
    let secret = first["secret"].as_str().expect("a secret");
    assert!(secret.len() >= 43, "32 random bytes or more: {secret:?}");

    let second = admin.post("/clients", json!({"name": "Intranet"})).await;
    assert_ne!(second["client_id"], first["client_id"]);
    assert_ne!(second["secret"], first["secret"]);
    assert!(second["secret"].as_str().unwrap().len() >= 43);

    admin.post("/teams", json!({"name": "staff"})).await;
    let explicit = admin
        .post(
            "/clients",
            json!({"client_id": "portal", "name": "Portal", "algorithm": "HS256",
                "allowed_origins": ["https://portal.example"], "allowed_teams": ["staff"],
                "allow_internal_users": true}),
        )
        .await;
    assert_eq!(explicit["client_id"], "portal");
    assert_eq!(
        explicit["allowed_origins"],
        json!(["https://portal.example"])
    );
    assert_eq!(explicit["allowed_teams"], json!(["staff"]));
    assert_eq!(explicit["allow_internal_users"], true);
    assert_eq!(explicit["status"], "active");

    let list = admin.get("/clients").await;
    assert_eq!(
        sorted_strings(strings(&list, "client_id")),
        sorted_strings(vec![
            id.to_owned(),
            second["client_id"].as_str().unwrap().to_owned(),
            "portal".to_owned()
        ])
    );
    let one = admin.get("/clients/portal").await;
    assert_eq!(one["name"], "Portal");
    assert_eq!(one["status"], "active");
}

#[tokio::test]
async fn client_lists_never_show_secrets() {
    let app = seeded().await;
    let admin = app.admin();
    let created = admin
        .post("/clients", json!({"client_id": "portal", "name": "Portal"}))
        .await;
    let first = created["secret"].as_str().unwrap().to_owned();
    let rotated = admin
        .expect(Method::POST, "/clients/portal/rotate", Some(json!({})), 200)
        .await;
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let acme = admin
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            None,
            200,
        )
        .await;
    let third = acme["secret"].as_str().unwrap().to_owned();

    for path in [
        "/clients".to_owned(),
        "/clients/portal".to_owned(),
        format!("/clients/{ACME_CLIENT}"),
        format!("/clients/{GLOBEX_CLIENT}"),
    ] {
        let res = admin.send(Method::GET, &path, None).await;
        assert_eq!(res.status(), 200, "{path}");
        let text = res.text().await.unwrap();
        for secret in [ACME_SECRET, GLOBEX_SECRET, &first, &second, &third] {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
        let json: Value = serde_json::from_str(&text).unwrap();
        let items = match json {
            Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            assert!(item.get("secret").is_none(), "{path}: {item}");
            assert!(item.get("previous_secret").is_none(), "{path}: {item}");
        }
    }
}

#[tokio::test]
async fn a_duplicate_client_id_is_a_conflict() {
    let app = seeded().await;
    refused(
        &app,
        Method::POST,
        "/clients",
        Some(json!({"client_id": ACME_CLIENT, "name": "Again"})),
        409,
        "conflict",
    )
    .await;
    refused(
        &app,
        Method::POST,
        "/clients",
        Some(json!({"client_id": ACME_CLIENT, "name": "Again", "secret": "x".repeat(40)})),
        409,
        "conflict",
    )
    .await;
    let acme = app.admin().get(&format!("/clients/{ACME_CLIENT}")).await;
    assert_eq!(acme["name"], "Acme host");
    // The original secret still signs.
    handshake_works(&app, &app.token().sign(), "sales").await;
}

#[tokio::test]
async fn invalid_client_definitions_are_refused() {
    let app = spawn_app().await;
    let pem_like = "-----BEGIN PUBLIC KEY-----\nnot really a key\n-----END PUBLIC KEY-----\n";
    for body in [
        json!({"name": "X", "algorithm": "HS257"}),
        json!({"name": "X", "algorithm": "hs256"}),
        json!({"name": "X", "algorithm": "none"}),
        json!({"name": "X", "algorithm": ""}),
        json!({"name": "X", "allowed_origins": ["https://a.example/path"]}),
        json!({"name": "X", "allowed_origins": ["a.example"]}),
        json!({"name": "X", "allowed_origins": ["https://a.example?x=1"]}),
        json!({"name": "X", "allowed_origins": ["ftp://a.example"]}),
        json!({"name": "X", "allowed_origins": ["*"]}),
        json!({"name": "X", "secret": "s".repeat(31)}),
        json!({"name": "X", "public_key_pem": pem_like}),
        json!({"name": "X", "algorithm": "HS256", "jwks_url": "https://a.example/jwks.json"}),
        json!({"name": "X", "algorithm": "RS256"}),
        json!({"name": "X", "algorithm": "RS256", "public_key_pem": "garbage"}),
        json!({"name": "X", "algorithm": "RS256", "public_key_pem": pem_like}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({}),
        json!({"client_id": "bad id", "name": "X"}),
        json!({"client_id": "../etc/passwd", "name": "X"}),
        json!({"client_id": "", "name": "X"}),
        json!({"client_id": "x".repeat(65), "name": "X"}),
        json!({"name": "X", "colour": "red"}),
        json!({"name": 5}),
        json!({"name": "X", "allowed_origins": "https://a.example"}),
        json!({"name": "X", "allowed_teams": "staff"}),
        json!({"name": "X", "allowed_teams": [""]}),
        json!({"name": "X", "allow_internal_users": "yes"}),
        json!({"name": "X", "client_id": 7}),
    ] {
        refused(
            &app,
            Method::POST,
            "/clients",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, "/clients", "name=X").await;
    assert_eq!(
        app.admin().get("/clients").await,
        json!([]),
        "nothing created"
    );

    // Exactly 32 characters is enough, and that secret signs.
    seed(&app).await;
    let secret = "0123456789abcdef0123456789abcdef";
    assert_eq!(secret.len(), 32);
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": "exact-32", "name": "Exact", "secret": secret}),
        )
        .await;
    assert_eq!(created["client_id"], "exact-32");
    let token = TokenBuilder::new("exact-32", secret, app.clock.unix())
        .email("pat@acme.example")
        .sign();
    handshake_works(&app, &token, "sales").await;
}

#[tokio::test]
async fn a_token_signed_with_the_returned_secret_is_accepted() {
    let app = seeded().await;
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": "portal", "name": "Portal", "allowed_teams": ["acme-analysts"]}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap();
    let token = TokenBuilder::new("portal", secret, app.clock.unix())
        .email("pat@acme.example")
        .sign();
    let cookie = app.open(&token, "sales").await;
    session_works(&app, &cookie, "sales").await;
    let bad = TokenBuilder::new("portal", ACME_SECRET, app.clock.unix())
        .email("pat@acme.example")
        .sign();
    handshake_fails(&app, &bad, "sales", 401, "token_bad_signature").await;
}

#[tokio::test]
async fn rotating_keeps_the_old_secret_valid_for_the_grace_period_only() {
    let app = seeded().await;
    let rotated = app
        .admin()
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            Some(json!({"grace_secs": 600})),
            200,
        )
        .await;
    let secret = rotated["secret"].as_str().expect("a new secret").to_owned();
    assert_ne!(secret, ACME_SECRET);
    assert!(secret.len() >= 43, "{secret:?}");
    assert_eq!(rotated["previous_valid_until"], "2027-01-15T08:10:00Z");

    let new = |app: &TestApp| TokenBuilder::new(ACME_CLIENT, &secret, app.clock.unix()).sign();
    handshake_works(&app, &app.token().sign(), "sales").await;
    handshake_works(&app, &new(&app), "sales").await;
    app.clock.advance_secs(599);
    handshake_works(&app, &app.token().sign(), "sales").await;
    handshake_works(&app, &new(&app), "sales").await;
    app.clock.advance_secs(2);
    handshake_fails(
        &app,
        &app.token().sign(),
        "sales",
        401,
        "token_bad_signature",
    )
    .await;
    handshake_works(&app, &new(&app), "sales").await;
}

#[tokio::test]
async fn rotating_without_a_body_uses_the_default_grace_of_an_hour() {
    let app = seeded().await;
    let rotated = app
        .admin()
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            None,
            200,
        )
        .await;
    assert_eq!(rotated["previous_valid_until"], "2027-01-15T09:00:00Z");
    let secret = rotated["secret"].as_str().unwrap().to_owned();
    app.clock.advance_secs(3599);
    handshake_works(&app, &app.token().sign(), "sales").await;
    app.clock.advance_secs(2);
    handshake_fails(
        &app,
        &app.token().sign(),
        "sales",
        401,
        "token_bad_signature",
    )
    .await;
    let token = TokenBuilder::new(ACME_CLIENT, &secret, app.clock.unix()).sign();
    handshake_works(&app, &token, "sales").await;
}

#[tokio::test]
async fn rotating_with_no_grace_ends_the_old_secret_at_once() {
    let app = seeded().await;
    let rotated = app
        .admin()
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            Some(json!({"grace_secs": 0})),
            200,
        )
        .await;
    let secret = rotated["secret"].as_str().unwrap().to_owned();
    handshake_fails(
        &app,
        &app.token().sign(),
        "sales",
        401,
        "token_bad_signature",
    )
    .await;
    let token = TokenBuilder::new(ACME_CLIENT, &secret, app.clock.unix()).sign();
    handshake_works(&app, &token, "sales").await;
}

#[tokio::test]
async fn rotating_an_unknown_client_is_404_and_a_bad_grace_is_400() {
    let app = seeded().await;
    refused(
        &app,
        Method::POST,
        "/clients/no-such-client/rotate",
        Some(json!({"grace_secs": 60})),
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::POST,
        "/clients/no-such-client/rotate",
        None,
        404,
        "not_found",
    )
    .await;
    let path = format!("/clients/{ACME_CLIENT}/rotate");
    for body in [
        json!({"grace_secs": -1}),
        json!({"grace_secs": "600"}),
        json!({"grace_secs": 1.5}),
        json!({"grace": 600}),
    ] {
        refused(
            &app,
            Method::POST,
            &path,
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, &path, "grace_secs=600").await;
    // None of them rotated: the old secret still works long after.
    app.clock.advance_secs(7200);
    handshake_works(&app, &app.token().sign(), "sales").await;
}

#[tokio::test]
async fn revoking_a_client_stops_its_tokens_and_sessions_at_once() {
    let app = seeded().await;
    let acme_cookie = app.open(&app.token().sign(), "sales").await;
    let globex_cookie = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    app.admin().delete(&format!("/clients/{ACME_CLIENT}")).await;

    let list = app.admin().get("/clients").await;
    let acme = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == ACME_CLIENT)
        .cloned()
        .expect("a revoked client stays in the list");
    assert_eq!(acme["status"], "revoked", "{acme}");
    let globex = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == GLOBEX_CLIENT)
        .cloned()
        .unwrap();
    assert_eq!(globex["status"], "active");

    handshake_fails(
        &app,
        &app.token().sign(),
        "sales",
        401,
        "token_unknown_client",
    )
    .await;
    session_fails(&app, &acme_cookie, "sales", 401, "session_invalid").await;
    session_works(&app, &globex_cookie, "inventory").await;
    handshake_works(
        &app,
        &TokenBuilder::globex(app.clock.unix()).sign(),
        "inventory",
    )
    .await;

    let app = app.restart().await;
    session_fails(&app, &acme_cookie, "sales", 401, "session_invalid").await;
    handshake_fails(
        &app,
        &app.token().sign(),
        "sales",
        401,
        "token_unknown_client",
    )
    .await;
    session_works(&app, &globex_cookie, "inventory").await;
}

#[tokio::test]
async fn revoking_an_unknown_client_is_404() {
    let app = seeded().await;
    refused(
        &app,
        Method::DELETE,
        "/clients/no-such-client",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::GET,
        "/clients/no-such-client",
        None,
        404,
        "not_found",
    )
    .await;
    let list = app.admin().get("/clients").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "active"),
        "{list}"
    );
}

// ---- teams ---------------------------------------------------------------

#[tokio::test]
async fn teams_are_created_listed_read_and_patched() {
    let app = spawn_app().await;
    let admin = app.admin();
    let res = admin
        .send(
            Method::POST,
            "/teams",
            Some(json!({"name": "Support", "description": "Help desk"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let team: Value = res.json().await.unwrap();
    let id = team["id"].as_i64().expect("a numeric id");
    assert_eq!(team["name"], "Support");
    assert_eq!(team["description"], "Help desk");
    assert_eq!(team["visibility"], "private");

    let public = admin
        .post(
            "/teams",
            json!({"name": "Everyone", "visibility": "public"}),
        )
        .await;
    assert_eq!(public["visibility"], "public");

    let list = admin.get("/teams").await;
    assert_eq!(
        sorted_strings(strings(&list, "name")),
        sorted_strs(&["Support", "Everyone"])
    );
    assert_eq!(by_id(&list, &team["id"]), team);
    assert_eq!(admin.get(&format!("/teams/{id}")).await, team);

    let patched = admin
        .patch(
            &format!("/teams/{id}"),
            json!({"description": "Front line"}),
        )
        .await;
    assert_eq!(patched["description"], "Front line");
    assert_eq!(patched["name"], "Support");
    assert_eq!(patched["visibility"], "private");
    let patched = admin
        .patch(
            &format!("/teams/{id}"),
            json!({"name": "Helpdesk", "visibility": "public"}),
        )
        .await;
    assert_eq!(patched["name"], "Helpdesk");
    assert_eq!(patched["visibility"], "public");
    assert_eq!(patched["description"], "Front line");
    assert_eq!(patched["id"], id);
    assert_eq!(admin.get(&format!("/teams/{id}")).await, patched);

    refused(
        &app,
        Method::PATCH,
        &format!("/teams/{id}"),
        Some(json!({"name": "Everyone"})),
        409,
        "conflict",
    )
    .await;
    assert_eq!(admin.get(&format!("/teams/{id}")).await, patched);
}

#[tokio::test]
async fn invalid_or_duplicate_teams_are_refused() {
    let app = seeded().await;
    let before = app.admin().get("/teams").await;
    for body in [
        json!({"name": ""}),
        json!({"name": "t".repeat(256)}),
        json!({"name": "tab\there"}),
        json!({"name": "new\nline"}),
        json!({"name": "bell\u{7}"}),
        json!({"name": " padded"}),
        json!({"name": "padded "}),
        json!({"name": "ok", "visibility": "secret"}),
        json!({"name": "ok", "visibility": ""}),
        json!({"name": 5}),
        json!({}),
        json!({"name": "ok", "colour": "red"}),
        json!({"name": "ok", "description": 5}),
        json!({"name": "ok", "description": "a\u{0}b"}),
    ] {
        refused(
            &app,
            Method::POST,
            "/teams",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, "/teams", "name=ok").await;
    refused(
        &app,
        Method::POST,
        "/teams",
        Some(json!({"name": "staff"})),
        409,
        "conflict",
    )
    .await;
    let staff = team_id_of(&app, "staff").await;
    for body in [
        json!({"name": ""}),
        json!({"name": " staff"}),
        json!({"visibility": "secret"}),
        json!({"colour": "red"}),
    ] {
        refused(
            &app,
            Method::PATCH,
            &format!("/teams/{staff}"),
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(app.admin().get("/teams").await, before, "nothing changed");
    // 255 characters is still a name.
    app.admin()
        .post("/teams", json!({"name": "t".repeat(255)}))
        .await;
}

#[tokio::test]
async fn unknown_teams_are_404() {
    let app = seeded().await;
    let before = app.admin().get("/teams").await;
    for id in ["999999", "abc", "-1", "0"] {
        let path = format!("/teams/{id}");
        refused(&app, Method::GET, &path, None, 404, "not_found").await;
        refused(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"description": "x"})),
            404,
            "not_found",
        )
        .await;
        refused(&app, Method::DELETE, &path, None, 404, "not_found").await;
    }
    assert_eq!(app.admin().get("/teams").await, before);
}

#[tokio::test]
async fn deleting_a_team_removes_its_memberships_and_grants() {
    let app = seeded().await;
    let admin = app.admin();
    let cookie = app.open(&app.token().sign(), "sales").await;
    let ian = internal_user(&app, "ian@corp.example", &["acme-analysts", "staff"]).await;
    let analysts = team_id_of(&app, "acme-analysts").await;
    assert_eq!(
        admin
            .get("/grants?team=acme-analysts")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    admin.delete(&format!("/teams/{analysts}")).await;

    refused(
        &app,
        Method::GET,
        &format!("/teams/{analysts}"),
        None,
        404,
        "not_found",
    )
    .await;
    let ian = admin.get(&format!("/users/{}", ian["id"])).await;
    assert_eq!(ian["teams"], json!(["staff"]));
    assert_eq!(admin.user("ana@acme.example").await["teams"], json!([]));
    assert_eq!(admin.get("/grants?team=acme-analysts").await, json!([]));
    let grants = admin.get("/grants").await;
    assert_eq!(grants.as_array().unwrap().len(), 2, "{grants}");
    for g in grants.as_array().unwrap() {
        assert_ne!(g["team"], "acme-analysts", "{g}");
        assert_ne!(g["team"], analysts.to_string(), "{g}");
    }
    session_fails(&app, &cookie, "sales", 403, "access_denied").await;

    // A new team with the same name inherits nothing.
    let again = admin.post("/teams", json!({"name": "acme-analysts"})).await;
    assert_ne!(again["id"], analysts);
    assert_eq!(admin.get("/grants?team=acme-analysts").await, json!([]));
    assert_eq!(admin.get("/users?team=acme-analysts").await, json!([]));
    session_fails(&app, &cookie, "sales", 403, "access_denied").await;
}

// ---- users ---------------------------------------------------------------

#[tokio::test]
async fn creating_a_user_defaults_to_an_internal_active_user() {
    let app = seeded().await;
    let admin = app.admin();
    let res = admin
        .send(
            Method::POST,
            "/users",
            Some(json!({"email": "Ian@Corp.Example", "teams": ["staff"],
                "attributes": {"company": "corp"}})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let user: Value = res.json().await.unwrap();
    for key in [
        "id",
        "email",
        "kind",
        "status",
        "first_name",
        "last_name",
        "account_type",
        "teams",
        "attributes",
        "created_at",
        "updated_at",
        "last_seen_at",
    ] {
        assert!(user.get(key).is_some(), "{key} missing in {user}");
    }
    assert!(user["id"].as_i64().is_some(), "{user}");
    assert_eq!(user["email"], "ian@corp.example");
    assert_eq!(user["kind"], "internal");
    assert_eq!(user["status"], "active");
    assert_eq!(user["first_name"], Value::Null);
    assert_eq!(user["last_name"], Value::Null);
    assert_eq!(user["account_type"], "Viewer");
    assert_eq!(user["teams"], json!(["staff"]));
    assert_eq!(user["attributes"], json!({"company": "corp"}));
    assert_eq!(rfc3339_utc(&user["created_at"]), NOW);
    assert_eq!(rfc3339_utc(&user["updated_at"]), NOW);
    assert_eq!(user["last_seen_at"], Value::Null);
    assert_eq!(admin.get(&format!("/users/{}", user["id"])).await, user);

    let bare = admin
        .post("/users", json!({"email": "bo@corp.example"}))
        .await;
    assert_eq!(bare["teams"], json!([]));
    assert_eq!(bare["attributes"], json!({}));
    assert_eq!(bare["kind"], "internal");

    admin
        .settings(json!({"default_account_type": "Explorer"}))
        .await;
    let later = admin
        .post("/users", json!({"email": "eve@corp.example"}))
        .await;
    assert_eq!(later["account_type"], "Explorer");
    let chosen = admin
        .post(
            "/users",
            json!({"email": "cy@corp.example", "account_type": "Creator", "kind": "embed"}),
        )
        .await;
    assert_eq!(chosen["account_type"], "Creator");
    assert_eq!(chosen["kind"], "embed");
}

#[tokio::test]
async fn users_are_listed_with_filters() {
    let app = seeded().await;
    let admin = app.admin();
    internal_user(&app, "ian@corp.example", &["staff"]).await;
    internal_user(&app, "iris@corp.example", &["acme-analysts", "staff"]).await;
    app.open(&app.token().sign(), "sales").await;
    app.open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;

    let emails = |list: Value| sorted_strings(strings(&list, "email"));
    assert_eq!(
        emails(admin.users().await),
        sorted_strs(&[
            "ian@corp.example",
            "iris@corp.example",
            "ana@acme.example",
            "gina@globex.example"
        ])
    );
    assert_eq!(
        emails(admin.get("/users?email=IAN@Corp.Example").await),
        ["ian@corp.example"]
    );
    assert_eq!(
        emails(admin.get("/users?email=ana@acme.example").await),
        ["ana@acme.example"]
    );
    assert_eq!(
        emails(admin.get("/users?kind=internal").await),
        sorted_strs(&["ian@corp.example", "iris@corp.example"])
    );
    assert_eq!(
        emails(admin.get("/users?kind=embed").await),
        sorted_strs(&["ana@acme.example", "gina@globex.example"])
    );
    assert_eq!(
        emails(admin.get("/users?team=staff").await),
        sorted_strs(&["ian@corp.example", "iris@corp.example"])
    );
    assert_eq!(
        emails(admin.get("/users?team=acme-analysts").await),
        sorted_strs(&["ana@acme.example", "iris@corp.example"])
    );
    assert_eq!(
        emails(admin.get("/users?team=acme-analysts&kind=embed").await),
        ["ana@acme.example"]
    );
    assert_eq!(
        emails(admin.get("/users?team=acme-analysts&kind=internal").await),
        ["iris@corp.example"]
    );
    assert_eq!(admin.get("/users?team=staff&kind=embed").await, json!([]));
    assert_eq!(
        admin
            .get("/users?email=ana@acme.example&kind=internal")
            .await,
        json!([])
    );
    assert_eq!(
        emails(
            admin
                .get("/users?email=iris@corp.example&team=staff&kind=internal")
                .await
        ),
        ["iris@corp.example"]
    );
    assert_eq!(admin.get("/users?team=no-such-team").await, json!([]));
    assert_eq!(
        admin.get("/users?email=nobody@corp.example").await,
        json!([])
    );
    refused(
        &app,
        Method::GET,
        "/users?kind=robot",
        None,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn invalid_or_duplicate_users_are_refused() {
    let app = seeded().await;
    for body in [
        json!({"email": "not-an-email"}),
        json!({"email": "ana@localhost"}),
        json!({"email": ""}),
        json!({"email": "a b@corp.example"}),
        json!({"email": "two@@corp.example"}),
        json!({"email": "\u{430}na@corp.example"}),
        json!({"email": 5}),
        json!({}),
        json!({"email": "x@corp.example", "teams": ["no-such-team"]}),
        json!({"email": "x@corp.example", "teams": ["staff", "no-such-team"]}),
        json!({"email": "x@corp.example", "teams": "staff"}),
        json!({"email": "x@corp.example", "account_type": "Wizard"}),
        json!({"email": "x@corp.example", "kind": "robot"}),
        json!({"email": "x@corp.example", "status": "sleeping"}),
        json!({"email": "x@corp.example", "attributes": {"bad-name": "x"}}),
        json!({"email": "x@corp.example", "attributes": {"company": 5}}),
        json!({"email": "x@corp.example", "attributes": {"company": "a\u{7}b"}}),
        json!({"email": "x@corp.example", "attributes": {"company": "x".repeat(1025)}}),
        json!({"email": "x@corp.example", "attributes": "company=acme"}),
        json!({"email": "x@corp.example", "colour": "red"}),
    ] {
        refused(
            &app,
            Method::POST,
            "/users",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, "/users", "email=x@corp.example").await;
    assert_eq!(app.admin().users().await, json!([]), "nothing created");

    internal_user(&app, "ian@corp.example", &["staff"]).await;
    refused(
        &app,
        Method::POST,
        "/users",
        Some(json!({"email": "IAN@Corp.Example", "teams": ["acme-analysts"]})),
        409,
        "conflict",
    )
    .await;
    let users = app.admin().users().await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["teams"], json!(["staff"]));
}

#[tokio::test]
async fn reading_an_unknown_user_is_404() {
    let app = seeded().await;
    for id in ["999999", "abc", "-1"] {
        refused(
            &app,
            Method::GET,
            &format!("/users/{id}"),
            None,
            404,
            "not_found",
        )
        .await;
    }
    refused(
        &app,
        Method::PATCH,
        "/users/999999",
        Some(json!({"status": "deactivated"})),
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/users/999999",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::POST,
        "/users/999999/revoke-sessions",
        None,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn patching_a_user_merges_teams_account_type_attributes_status_and_names() {
    let app = seeded().await;
    let admin = app.admin();
    let user = admin
        .post(
            "/users",
            json!({"email": "ian@corp.example", "teams": ["staff"],
                "attributes": {"company": "corp", "region": "eu"}}),
        )
        .await;
    let path = format!("/users/{}", user["id"]);

    app.clock.advance_secs(60);
    let got = admin
        .patch(&path, json!({"attributes": {"region": null, "desk": "7"}}))
        .await;
    assert_eq!(got["attributes"], json!({"company": "corp", "desk": "7"}));
    assert_eq!(got["teams"], json!(["staff"]));
    assert_eq!(got["account_type"], "Viewer");
    assert_eq!(rfc3339_utc(&got["created_at"]), NOW);
    assert_eq!(rfc3339_utc(&got["updated_at"]), NOW + 60);

    app.clock.advance_secs(60);
    let got = admin
        .patch(&path, json!({"teams": ["acme-managers", "acme-analysts"]}))
        .await;
    assert_eq!(
        sorted(&got["teams"]),
        sorted_strs(&["acme-analysts", "acme-managers"]),
        "teams are replaced"
    );
    assert_eq!(got["attributes"], json!({"company": "corp", "desk": "7"}));
    assert_eq!(rfc3339_utc(&got["updated_at"]), NOW + 120);

    let got = admin.patch(&path, json!({"account_type": "Creator"})).await;
    assert_eq!(got["account_type"], "Creator");
    assert_eq!(
        sorted(&got["teams"]),
        sorted_strs(&["acme-analysts", "acme-managers"])
    );

    let got = admin
        .patch(&path, json!({"first_name": "Ian", "last_name": "Ito"}))
        .await;
    assert_eq!(
        (&got["first_name"], &got["last_name"]),
        (&json!("Ian"), &json!("Ito"))
    );
    let got = admin.patch(&path, json!({"first_name": null})).await;
    assert_eq!(got["first_name"], Value::Null);
    assert_eq!(got["last_name"], "Ito");

    let got = admin.patch(&path, json!({"status": "deactivated"})).await;
    assert_eq!(got["status"], "deactivated");
    let got = admin.patch(&path, json!({"status": "active"})).await;
    assert_eq!(got["status"], "active");

    let got = admin.patch(&path, json!({"teams": []})).await;
    assert_eq!(got["teams"], json!([]));
    assert_eq!(got["account_type"], "Creator");
    assert_eq!(got["attributes"], json!({"company": "corp", "desk": "7"}));
    assert_eq!(got["email"], "ian@corp.example");
    assert_eq!(got["kind"], "internal");
    assert_eq!(rfc3339_utc(&got["created_at"]), NOW);
    assert_eq!(admin.get(&path).await, got);
}

#[tokio::test]
async fn invalid_user_patches_are_refused_and_change_nothing() {
    let app = seeded().await;
    let user = app
        .admin()
        .post(
            "/users",
            json!({"email": "ian@corp.example", "teams": ["staff"], "attributes": {"company": "corp"}}),
        )
        .await;
    let path = format!("/users/{}", user["id"]);
    app.clock.advance_secs(60);
    for body in [
        json!({"teams": ["no-such-team"]}),
        json!({"teams": "staff"}),
        json!({"account_type": "Wizard"}),
        json!({"account_type": 3}),
        json!({"attributes": {"bad-name": "x"}}),
        json!({"attributes": {"company": 5}}),
        json!({"attributes": {"company": "a\u{7}b"}}),
        json!({"attributes": "company=acme"}),
        json!({"status": "sleeping"}),
        json!({"first_name": 5}),
        json!({"first_name": "a\u{0}b"}),
        json!({"last_name": "x".repeat(256)}),
        json!({"colour": "red"}),
        json!({"account_type": "Creator", "teams": ["no-such-team"]}),
        json!({"status": "deactivated", "attributes": {"bad-name": "x"}}),
        json!({"teams": ["acme-analysts"], "colour": "red"}),
    ] {
        refused(
            &app,
            Method::PATCH,
            &path,
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::PATCH, &path, "status=deactivated").await;
    assert_eq!(app.admin().get(&path).await, user, "nothing changed");
    assert!(
        app.admin()
            .audit("event=user_updated&email=ian@corp.example")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_user_patch_is_audited_with_what_changed() {
    let app = seeded().await;
    let user = internal_user(&app, "ian@corp.example", &["staff", "acme-analysts"]).await;
    app.admin()
        .patch(
            &format!("/users/{}", user["id"]),
            json!({"teams": ["staff", "acme-managers"], "account_type": "Explorer"}),
        )
        .await;
    let entries = app
        .admin()
        .audit("event=user_updated&email=ian@corp.example")
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["email"], "ian@corp.example");
    assert_eq!(entry["outcome"], "allowed");
    let note = entry["note"].as_str().unwrap_or_default();
    for part in [
        "added",
        "acme-managers",
        "removed",
        "acme-analysts",
        "Viewer -> Explorer",
    ] {
        assert!(note.contains(part), "{part:?} missing in {note:?}");
    }
    let added = note.find("added").unwrap();
    let removed = note.find("removed").unwrap();
    let managers = note.find("acme-managers").unwrap();
    let analysts = note.find("acme-analysts").unwrap();
    if added < removed {
        assert!(
            added < managers && managers < removed && removed < analysts,
            "{note:?}"
        );
    } else {
        assert!(
            removed < analysts && analysts < added && added < managers,
            "{note:?}"
        );
    }
    // A patch that changes nothing is not an update.
    app.admin()
        .patch(
            &format!("/users/{}", user["id"]),
            json!({"account_type": "Explorer"}),
        )
        .await;
    assert_eq!(
        app.admin()
            .audit("event=user_updated&email=ian@corp.example")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn deleting_a_user_answers_204_then_404() {
    let app = seeded().await;
    let user = internal_user(&app, "ian@corp.example", &["staff"]).await;
    let path = format!("/users/{}", user["id"]);
    let res = app.admin().send(Method::DELETE, &path, None).await;
    assert_eq!(res.status(), 204);
    assert!(res.text().await.unwrap().is_empty(), "204 has no body");
    refused(&app, Method::GET, &path, None, 404, "not_found").await;
    refused(&app, Method::DELETE, &path, None, 404, "not_found").await;
    assert_eq!(app.admin().user("ian@corp.example").await, Value::Null);
    assert_eq!(app.admin().get("/users?team=staff").await, json!([]));
    // The email is free again, and the new user starts from nothing.
    let again = internal_user(&app, "ian@corp.example", &[]).await;
    assert_eq!(again["teams"], json!([]));
    assert_eq!(again["email"], "ian@corp.example");

    // An embed user's session ends with the user, and never becomes the
    // session of a user created afterwards.
    let cookie = app.open(&app.token().sign(), "sales").await;
    let ana = user_id_of(&app, "ana@acme.example").await;
    app.admin().delete(&format!("/users/{ana}")).await;
    session_fails(&app, &cookie, "sales", 401, "session_invalid").await;
    internal_user(&app, "mallory@acme.example", &["acme-analysts"]).await;
    session_fails(&app, &cookie, "sales", 401, "session_invalid").await;
}

#[tokio::test]
async fn revoking_a_users_sessions_ends_them_at_once() {
    let app = seeded().await;
    let both = app
        .token()
        .claim("teams", json!(["acme-analysts", "acme-managers"]));
    let sales = app
        .open(
            &both.clone().claim("jti", json!(fresh_jti())).sign(),
            "sales",
        )
        .await;
    let orders = app
        .open(&both.claim("jti", json!(fresh_jti())).sign(), "orders")
        .await;
    let gina = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    session_works(&app, &sales, "sales").await;
    session_works(&app, &orders, "orders").await;

    let ana = user_id_of(&app, "ana@acme.example").await;
    let res = app
        .admin()
        .send(Method::POST, &format!("/users/{ana}/revoke-sessions"), None)
        .await;
    assert_eq!(res.status(), 204);

    session_fails(&app, &sales, "sales", 401, "session_invalid").await;
    session_fails(&app, &orders, "orders", 401, "session_invalid").await;
    session_works(&app, &gina, "inventory").await;

    let app = app.restart().await;
    session_fails(&app, &sales, "sales", 401, "session_invalid").await;
    session_works(&app, &gina, "inventory").await;
    let fresh = app.open(&app.token().sign(), "sales").await;
    session_works(&app, &fresh, "sales").await;
}

#[tokio::test]
async fn deactivating_a_user_takes_effect_on_the_next_session_request() {
    let app = seeded().await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    session_works(&app, &cookie, "sales").await;
    let ana = user_id_of(&app, "ana@acme.example").await;
    app.admin()
        .patch(&format!("/users/{ana}"), json!({"status": "deactivated"}))
        .await;
    session_fails(&app, &cookie, "sales", 403, "user_deactivated").await;
    handshake_fails(&app, &app.token().sign(), "sales", 403, "user_deactivated").await;
    assert_eq!(
        app.admin().user("ana@acme.example").await["status"],
        "deactivated",
        "auto-provisioning never re-activates"
    );
}

// ---- account types ---------------------------------------------------------

fn permissions_of(list: &Value, name: &str) -> Vec<String> {
    let entry = list
        .as_array()
        .unwrap_or_else(|| panic!("expected a list, got {list}"))
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no account type {name} in {list}"));
    sorted(&entry["permissions"])
}

#[tokio::test]
async fn built_in_account_types_have_the_contract_permissions() {
    let app = spawn_app().await;
    let list = app.admin().get("/account-types").await;
    assert_eq!(permissions_of(&list, "Viewer"), sorted_strs(&["view"]));
    assert_eq!(
        permissions_of(&list, "Explorer"),
        sorted_strs(&["view", "explore", "export"])
    );
    assert_eq!(
        permissions_of(&list, "Creator"),
        sorted_strs(&["view", "explore", "export", "edit"])
    );
    let viewer = app.admin().get("/account-types/Viewer").await;
    assert_eq!(viewer["name"], "Viewer");
    assert_eq!(sorted(&viewer["permissions"]), ["view"]);
}

#[tokio::test]
async fn custom_account_types_are_created_patched_and_deleted() {
    let app = seeded().await;
    let admin = app.admin();
    let res = admin
        .send(
            Method::POST,
            "/account-types",
            Some(json!({"name": "Analyst", "permissions": ["view", "export"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "Analyst");
    assert_eq!(
        sorted(&created["permissions"]),
        sorted_strs(&["view", "export"])
    );
    let list = admin.get("/account-types").await;
    assert_eq!(
        permissions_of(&list, "Analyst"),
        sorted_strs(&["view", "export"])
    );
    assert_eq!(admin.get("/account-types/Analyst").await, created);

    let patched = admin
        .patch(
            "/account-types/Analyst",
            json!({"permissions": ["view", "explore", "all_companies"]}),
        )
        .await;
    assert_eq!(
        sorted(&patched["permissions"]),
        sorted_strs(&["view", "explore", "all_companies"])
    );
    assert_eq!(admin.get("/account-types/Analyst").await, patched);

    // It can be given to a user.
    let user = admin
        .post(
            "/users",
            json!({"email": "ian@corp.example", "account_type": "Analyst"}),
        )
        .await;
    assert_eq!(user["account_type"], "Analyst");
    admin.delete(&format!("/users/{}", user["id"])).await;

    let res = admin
        .send(Method::DELETE, "/account-types/Analyst", None)
        .await;
    assert_eq!(res.status(), 204);
    refused(
        &app,
        Method::GET,
        "/account-types/Analyst",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/account-types/Analyst",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::PATCH,
        "/account-types/Analyst",
        Some(json!({"permissions": ["view"]})),
        404,
        "not_found",
    )
    .await;
    let list = admin.get("/account-types").await;
    assert!(
        !strings(&list, "name").contains(&"Analyst".to_owned()),
        "{list}"
    );
}

#[tokio::test]
async fn invalid_and_duplicate_account_types_are_refused() {
    let app = spawn_app().await;
    let before = app.admin().get("/account-types").await;
    for body in [
        json!({"name": "Analyst", "permissions": ["sudo"]}),
        json!({"name": "Analyst", "permissions": ["view", "View"]}),
        json!({"name": "", "permissions": ["view"]}),
        json!({"name": "   ", "permissions": ["view"]}),
        json!({"name": "bell\u{7}", "permissions": ["view"]}),
        json!({"name": "Analyst"}),
        json!({"name": "Analyst", "permissions": "view"}),
        json!({"permissions": ["view"]}),
        json!({"name": "Analyst", "permissions": ["view"], "colour": "red"}),
    ] {
        refused(
            &app,
            Method::POST,
            "/account-types",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(app.admin().get("/account-types").await, before);

    let created = app
        .admin()
        .post(
            "/account-types",
            json!({"name": "Analyst", "permissions": ["view"]}),
        )
        .await;
    for name in ["Analyst", "Viewer", "Creator"] {
        refused(
            &app,
            Method::POST,
            "/account-types",
            Some(json!({"name": name, "permissions": ["view", "edit"]})),
            409,
            "conflict",
        )
        .await;
    }
    refused(
        &app,
        Method::PATCH,
        "/account-types/Analyst",
        Some(json!({"permissions": ["sudo"]})),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(app.admin().get("/account-types/Analyst").await, created);
    assert_eq!(
        permissions_of(&app.admin().get("/account-types").await, "Viewer"),
        ["view"]
    );
}

#[tokio::test]
async fn built_in_account_types_cannot_be_changed_or_deleted() {
    let app = spawn_app().await;
    let before = app.admin().get("/account-types").await;
    for name in ["Viewer", "Explorer", "Creator"] {
        refused(
            &app,
            Method::PATCH,
            &format!("/account-types/{name}"),
            Some(json!({"permissions": ["view", "explore", "export", "edit", "all_companies"]})),
            409,
            "conflict",
        )
        .await;
        refused(
            &app,
            Method::DELETE,
            &format!("/account-types/{name}"),
            None,
            409,
            "conflict",
        )
        .await;
    }
    assert_eq!(app.admin().get("/account-types").await, before);
}

#[tokio::test]
async fn an_account_type_in_use_cannot_be_deleted() {
    let app = seeded().await;
    let admin = app.admin();
    admin
        .post(
            "/account-types",
            json!({"name": "Analyst", "permissions": ["view"]}),
        )
        .await;
    let user = admin
        .post(
            "/users",
            json!({"email": "ian@corp.example", "account_type": "Analyst"}),
        )
        .await;
    refused(
        &app,
        Method::DELETE,
        "/account-types/Analyst",
        None,
        409,
        "conflict",
    )
    .await;
    assert_eq!(admin.get("/account-types/Analyst").await["name"], "Analyst");
    assert_eq!(
        admin.get(&format!("/users/{}", user["id"])).await["account_type"],
        "Analyst"
    );
    admin
        .patch(
            &format!("/users/{}", user["id"]),
            json!({"account_type": "Viewer"}),
        )
        .await;
    admin.delete("/account-types/Analyst").await;

    // An embed user holding it counts too.
    admin
        .post(
            "/account-types",
            json!({"name": "Lead", "permissions": ["view", "export"]}),
        )
        .await;
    app.open(
        &app.token().claim("account_type", json!("Lead")).sign(),
        "sales",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/account-types/Lead",
        None,
        409,
        "conflict",
    )
    .await;

    // So does the current default account type.
    admin
        .post(
            "/account-types",
            json!({"name": "Boss", "permissions": ["view"]}),
        )
        .await;
    admin
        .settings(json!({"default_account_type": "Boss"}))
        .await;
    refused(
        &app,
        Method::DELETE,
        "/account-types/Boss",
        None,
        409,
        "conflict",
    )
    .await;
    assert_eq!(admin.get("/settings").await["default_account_type"], "Boss");
    admin
        .settings(json!({"default_account_type": "Viewer"}))
        .await;
    admin.delete("/account-types/Boss").await;
}

// ---- workspaces ----------------------------------------------------------

#[tokio::test]
async fn workspaces_nest_and_only_empty_ones_can_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin();
    admin.post("/teams", json!({"name": "staff"})).await;
    let res = admin
        .send(
            Method::POST,
            "/workspaces",
            Some(json!({"name": "reports"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let reports: Value = res.json().await.unwrap();
    let reports_id = reports["id"].as_i64().expect("a numeric id");
    assert_eq!(reports["name"], "reports");
    assert_eq!(reports["parent"], Value::Null);
    let finance = admin
        .post(
            "/workspaces",
            json!({"name": "finance", "parent": reports_id}),
        )
        .await;
    let finance_id = finance["id"].as_i64().unwrap();
    assert_eq!(finance["name"], "finance");
    assert_eq!(finance["parent"], reports_id);
    let archive = admin.post("/workspaces", json!({"name": "archive"})).await;
    let archive_id = archive["id"].as_i64().unwrap();

    let list = admin.get("/workspaces").await;
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert_eq!(by_id(&list, &finance["id"])["parent"], reports_id);

    for body in [
        json!({"name": "x", "parent": 999999}),
        json!({"name": "x", "parent": "reports"}),
        json!({"name": ""}),
        json!({}),
        json!({"name": "x", "colour": "red"}),
    ] {
        refused(
            &app,
            Method::POST,
            "/workspaces",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(admin.get("/workspaces").await, list);

    admin
        .post(
            "/workbooks",
            json!({"id": "pnl", "name": "P&L", "workspace": finance_id, "source": template("sales.html")}),
        )
        .await;
    refused(
        &app,
        Method::DELETE,
        &format!("/workspaces/{reports_id}"),
        None,
        409,
        "conflict",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        &format!("/workspaces/{finance_id}"),
        None,
        409,
        "conflict",
    )
    .await;

    let grant = admin
        .post(
            "/grants",
            json!({"team": "staff", "workspace": archive_id, "level": "view"}),
        )
        .await;
    let res = admin
        .send(Method::DELETE, &format!("/workspaces/{archive_id}"), None)
        .await;
    assert_eq!(res.status(), 204);
    assert!(
        by_id(&admin.get("/grants").await, &grant["id"]).is_null(),
        "the grant on the deleted workspace is gone"
    );
    refused(
        &app,
        Method::DELETE,
        &format!("/workspaces/{archive_id}"),
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/workspaces/999999",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/workspaces/abc",
        None,
        404,
        "not_found",
    )
    .await;

    admin
        .patch("/workbooks/pnl", json!({"workspace": null}))
        .await;
    admin.delete(&format!("/workspaces/{finance_id}")).await;
    admin.delete(&format!("/workspaces/{reports_id}")).await;
    assert_eq!(admin.get("/workspaces").await, json!([]));
}

#[tokio::test]
async fn empty_workspaces_are_deleted_right_after_other_admin_writes() {
    let app = seeded().await;
    let admin = app.admin();
    for i in 0..20 {
        admin
            .post("/teams", json!({"name": format!("team-{i}")}))
            .await;
        let ws = admin
            .post("/workspaces", json!({"name": format!("scratch-{i}")}))
            .await;
        let id = ws["id"].as_i64().unwrap();
        if i % 2 == 0 {
            admin
                .post(
                    "/grants",
                    json!({"team": format!("team-{i}"), "workspace": id, "level": "view"}),
                )
                .await;
        }
        let res = admin
            .send(Method::DELETE, &format!("/workspaces/{id}"), None)
            .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 204, "round {i}: {text}");
    }
    let names = strings(&admin.get("/workspaces").await, "name");
    assert_eq!(sorted_strings(names), sorted_strs(&["reports", "finance"]));
}

// ---- workbooks -------------------------------------------------------------

#[tokio::test]
async fn workbooks_are_created_read_patched_and_deleted() {
    let app = seeded().await;
    let fixture_reports = app.admin().get("/workspaces").await;
    let id_of = |name: &str| {
        fixture_reports
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (reports, finance) = (id_of("reports"), id_of("finance"));
    let admin = app.admin();
    let source = json!({"type": "template", "template": "sales.html", "dataset": "sales.csv"});
    let res = admin
        .send(
            Method::POST,
            "/workbooks",
            Some(json!({"id": "pnl", "name": "P&L", "workspace": finance, "source": source})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["id"], "pnl");
    assert_eq!(created["name"], "P&L");
    assert_eq!(created["workspace"], finance);
    assert_eq!(created["source"], source);
    assert!(tag_names(&created).is_empty(), "{created}");
    assert_eq!(admin.get("/workbooks/pnl").await, created);
    assert_eq!(
        by_id(&admin.get("/workbooks").await, &json!("pnl")),
        created
    );

    let got = admin
        .patch("/workbooks/pnl", json!({"name": "Profit"}))
        .await;
    assert_eq!(got["name"], "Profit");
    assert_eq!(got["workspace"], finance);
    assert_eq!(got["source"], source);
    let got = admin
        .patch("/workbooks/pnl", json!({"workspace": reports}))
        .await;
    assert_eq!(got["workspace"], reports);
    assert_eq!(got["name"], "Profit");
    let got = admin
        .patch("/workbooks/pnl", json!({"workspace": null}))
        .await;
    assert_eq!(got["workspace"], Value::Null);
    let upstream = json!({"type": "upstream", "url": "http://127.0.0.1:9000/app"});
    let got = admin
        .patch("/workbooks/pnl", json!({"source": upstream}))
        .await;
    assert_eq!(got["source"], upstream);
    assert_eq!(got["name"], "Profit");
    assert_eq!(got["workspace"], Value::Null);
    assert_eq!(admin.get("/workbooks/pnl").await, got);

    refused(
        &app,
        Method::PATCH,
        "/workbooks/pnl",
        Some(json!({"workspace": 999999})),
        400,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        Method::PATCH,
        "/workbooks/nope",
        Some(json!({"name": "x"})),
        404,
        "not_found",
    )
    .await;
    assert_eq!(admin.get("/workbooks/pnl").await, got);

    let res = admin.send(Method::DELETE, "/workbooks/pnl", None).await;
    assert_eq!(res.status(), 204);
    refused(&app, Method::GET, "/workbooks/pnl", None, 404, "not_found").await;
    refused(
        &app,
        Method::DELETE,
        "/workbooks/pnl",
        None,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn invalid_or_duplicate_workbooks_are_refused() {
    let app = seeded().await;
    let before = app.admin().get("/workbooks").await;
    let wb = |id: &str, source: Value| json!({"id": id, "name": "X", "source": source});
    let tpl = template("inventory.html");
    let upstream = |url: &str| json!({"type": "upstream", "url": url});
    let long = "x".repeat(65);
    for body in [
        wb("a/b", tpl.clone()),
        wb("..", tpl.clone()),
        wb(".", tpl.clone()),
        wb("", tpl.clone()),
        wb(&long, tpl.clone()),
        wb("has space", tpl.clone()),
        wb("ok", template("nope.html")),
        wb("ok", template("../x")),
        wb("ok", template("/etc/passwd")),
        wb(
            "ok",
            json!({"type": "template", "template": "inventory.html", "dataset": "nope.csv"}),
        ),
        wb(
            "ok",
            json!({"type": "template", "template": "inventory.html", "dataset": "inventory.txt"}),
        ),
        wb(
            "ok",
            json!({"type": "template", "template": "inventory.html", "dataset": "../data/inventory.csv"}),
        ),
        wb("ok", json!({"type": "template"})),
        wb(
            "ok",
            json!({"type": "template", "template": "inventory.html", "extra": 1}),
        ),
        wb("ok", json!({"type": "ftp", "url": "ftp://a.example/x"})),
        wb("ok", upstream("example.com/app")),
        wb("ok", upstream("http://user:pw@127.0.0.1:9000/app")),
        wb("ok", upstream("ftp://127.0.0.1/app")),
        wb("ok", upstream("file:///etc/passwd")),
        json!({"id": "ok", "name": "X", "workspace": 999999, "source": tpl}),
        json!({"id": "ok", "name": "X", "workspace": "reports", "source": tpl}),
        json!({"id": "ok", "name": "", "source": tpl}),
        json!({"id": "ok", "name": "X"}),
        json!({"id": "ok", "name": "X", "source": tpl, "colour": "red"}),
        json!({"name": "X", "source": tpl}),
    ] {
        refused(
            &app,
            Method::POST,
            "/workbooks",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, "/workbooks", "id=ok").await;
    refused(
        &app,
        Method::POST,
        "/workbooks",
        Some(wb("sales", tpl.clone())),
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        app.admin().get("/workbooks").await,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn workbook_tags_are_put_and_deleted() {
    let app = seeded().await;
    let admin = app.admin();
    let first = template("inventory.html");
    let got = admin
        .expect(
            Method::PUT,
            "/workbooks/inventory/tags/beta",
            Some(json!({"source": first})),
            200,
        )
        .await;
    assert_eq!(got["id"], "inventory");
    assert_eq!(tag_names(&got), ["beta"]);
    assert_eq!(tag_source(&got, "beta"), first);

    let second = json!({"type": "template", "template": "sales.html", "dataset": "sales.csv"});
    let got = admin
        .expect(
            Method::PUT,
            "/workbooks/inventory/tags/beta",
            Some(json!({"source": second})),
            200,
        )
        .await;
    assert_eq!(tag_names(&got), ["beta"]);
    assert_eq!(tag_source(&got, "beta"), second, "PUT replaces");
    assert_eq!(admin.get("/workbooks/inventory").await, got);

    let long = "x".repeat(65);
    for tag in ["bad%20tag", "bad!", "a,b", long.as_str()] {
        refused(
            &app,
            Method::PUT,
            &format!("/workbooks/inventory/tags/{tag}"),
            Some(json!({"source": first})),
            400,
            "validation_failed",
        )
        .await;
    }
    for body in [
        json!({"source": template("nope.html")}),
        json!({"source": template("../x")}),
        json!({}),
        json!({"source": first, "colour": "red"}),
    ] {
        refused(
            &app,
            Method::PUT,
            "/workbooks/inventory/tags/gamma",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused(
        &app,
        Method::PUT,
        "/workbooks/nope/tags/beta",
        Some(json!({"source": first})),
        404,
        "not_found",
    )
    .await;
    assert_eq!(admin.get("/workbooks/inventory").await, got);

    let res = admin
        .send(Method::DELETE, "/workbooks/inventory/tags/beta", None)
        .await;
    assert_eq!(res.status(), 204);
    assert!(tag_names(&admin.get("/workbooks/inventory").await).is_empty());
    refused(
        &app,
        Method::DELETE,
        "/workbooks/inventory/tags/beta",
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/workbooks/nope/tags/v2",
        None,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_tag_removes_the_grants_for_it() {
    let app = seeded().await;
    let admin = app.admin();
    let grants = admin.get("/grants?workbook=sales").await;
    assert!(
        grants.as_array().unwrap().iter().any(|g| g["tag"] == "v2"),
        "{grants}"
    );
    let tagged =
        |app: &TestApp| format!("/embed/workbooks/sales?jwt={}&tag=v2", app.token().sign());
    let res = app.get_json(&tagged(&app)).await;
    assert_eq!(res.status(), 303);

    admin.delete("/workbooks/sales/tags/v2").await;
    let grants = admin.get("/grants").await;
    assert!(
        grants.as_array().unwrap().iter().all(|g| g["tag"] != "v2"),
        "{grants}"
    );
    let published = admin.get("/grants?workbook=sales").await;
    assert_eq!(published.as_array().unwrap().len(), 1, "{published}");
    assert_eq!(published[0]["tag"], Value::Null);

    // Putting the tag back does not bring the grant back.
    admin
        .expect(
            Method::PUT,
            "/workbooks/sales/tags/v2",
            Some(json!({"source": template("sales_v2.html")})),
            200,
        )
        .await;
    assert!(
        admin
            .get("/grants")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["tag"] != "v2")
    );
    assert_error(app.get_json(&tagged(&app)).await, 403, "access_denied").await;
    handshake_works(&app, &app.token().sign(), "sales").await;
}

#[tokio::test]
async fn deleting_a_workbook_removes_its_grants() {
    let app = seeded().await;
    let admin = app.admin();
    assert_eq!(admin.get("/grants").await.as_array().unwrap().len(), 4);
    admin.delete("/workbooks/sales").await;
    assert_eq!(admin.get("/grants?workbook=sales").await, json!([]));
    let grants = admin.get("/grants").await;
    assert_eq!(grants.as_array().unwrap().len(), 2, "{grants}");
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["workbook"] != "sales"),
        "{grants}"
    );
    // A new workbook with the same id inherits nothing.
    admin
        .post(
            "/workbooks",
            json!({"id": "sales", "name": "Sales again", "source": template("sales.html")}),
        )
        .await;
    assert_eq!(admin.get("/grants?workbook=sales").await, json!([]));
    handshake_fails(&app, &app.token().sign(), "sales", 403, "access_denied").await;
}

// ---- grants ----------------------------------------------------------------

#[tokio::test]
async fn grants_are_created_on_workbooks_workspaces_and_tags() {
    let app = seeded().await;
    let admin = app.admin();
    let reports = admin
        .get("/workspaces")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "reports")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let res = admin
        .send(
            Method::POST,
            "/grants",
            Some(json!({"team": "staff", "workbook": "inventory", "level": "edit"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let on_workbook: Value = res.json().await.unwrap();
    for key in ["id", "team", "workbook", "workspace", "level", "tag"] {
        assert!(
            on_workbook.get(key).is_some(),
            "{key} missing in {on_workbook}"
        );
    }
    assert!(on_workbook["id"].as_i64().is_some());
    assert_eq!(on_workbook["team"], "staff");
    assert_eq!(on_workbook["workbook"], "inventory");
    assert_eq!(on_workbook["workspace"], Value::Null);
    assert_eq!(on_workbook["level"], "edit");
    assert_eq!(on_workbook["tag"], Value::Null);

    let on_workspace = admin
        .post(
            "/grants",
            json!({"team": "staff", "workspace": reports, "level": "view", "tag": null}),
        )
        .await;
    assert_eq!(on_workspace["workbook"], Value::Null);
    assert_eq!(on_workspace["workspace"], reports);
    assert_eq!(on_workspace["level"], "view");

    let on_tag = admin
        .post(
            "/grants",
            json!({"team": "staff", "workbook": "sales", "level": "explore", "tag": "v2"}),
        )
        .await;
    assert_eq!(on_tag["tag"], "v2");
    assert_eq!(on_tag["workbook"], "sales");
    assert_eq!(on_tag["level"], "explore");

    let list = admin.get("/grants").await;
    for g in [&on_workbook, &on_workspace, &on_tag] {
        let listed = by_id(&list, &g["id"]);
        for key in ["team", "workbook", "workspace", "level", "tag"] {
            assert_eq!(listed[key], g[key], "{key} of {g} in {list}");
        }
    }

    // They take effect: a staff member may now open them.
    internal_user(&app, "ian@corp.example", &["staff"]).await;
    let explain = |q: &str| {
        let q = q.to_owned();
        let admin = app.admin();
        async move {
            admin
                .get(&format!("/explain?email=ian@corp.example&{q}"))
                .await
        }
    };
    let e = explain("workbook=inventory").await;
    assert_eq!(
        (&e["allowed"], &e["level"]),
        (&json!(true), &json!("edit")),
        "{e}"
    );
    let e = explain("workbook=orders").await;
    assert_eq!(
        (&e["allowed"], &e["level"]),
        (&json!(true), &json!("view")),
        "{e}"
    );
    let e = explain("workbook=sales&tag=v2").await;
    assert_eq!(
        (&e["allowed"], &e["level"]),
        (&json!(true), &json!("explore")),
        "{e}"
    );
}

#[tokio::test]
async fn invalid_or_duplicate_grants_are_refused() {
    let app = seeded().await;
    let admin = app.admin();
    let reports = admin
        .get("/workspaces")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "reports")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let before = admin.get("/grants").await;
    for body in [
        json!({"team": "staff", "workbook": "orders", "workspace": reports, "level": "view"}),
        json!({"team": "staff", "level": "view"}),
        json!({"team": "no-such-team", "workbook": "orders", "level": "view"}),
        json!({"team": "staff", "workbook": "no-such-workbook", "level": "view"}),
        json!({"team": "staff", "workspace": 999999, "level": "view"}),
        json!({"team": "staff", "workbook": "orders", "level": "admin"}),
        json!({"team": "staff", "workbook": "orders", "level": "View"}),
        json!({"team": "staff", "workbook": "orders"}),
        json!({"team": "staff", "workbook": "orders", "level": "view", "tag": "v2"}),
        json!({"team": "staff", "workbook": "sales", "level": "view", "tag": "v9"}),
        json!({"team": "staff", "workbook": "orders", "level": "view", "colour": "red"}),
        json!({"team": 5, "workbook": "orders", "level": "view"}),
        json!({"workbook": "orders", "level": "view"}),
        json!({"team": "staff", "workspace": "reports", "level": "view"}),
    ] {
        refused(
            &app,
            Method::POST,
            "/grants",
            Some(body),
            400,
            "validation_failed",
        )
        .await;
    }
    refused_raw(&app, Method::POST, "/grants", "team=staff").await;
    for body in [
        json!({"team": "acme-analysts", "workbook": "sales", "level": "view"}),
        json!({"team": "acme-analysts", "workbook": "sales", "level": "view", "tag": "v2"}),
        json!({"team": "acme-managers", "workspace": reports, "level": "explore"}),
    ] {
        refused(&app, Method::POST, "/grants", Some(body), 409, "conflict").await;
    }
    assert_eq!(admin.get("/grants").await, before, "nothing changed");
}

#[tokio::test]
async fn grants_are_listed_with_filters_and_deleted() {
    let app = seeded().await;
    let admin = app.admin();
    let all = admin.get("/grants").await;
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
    let find = |team: &str, workbook: &str, tag: Value| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|g| g["team"] == team && g["workbook"] == workbook && g["tag"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("no grant {team} {workbook} in {all}"))
    };
    let sales = find("acme-analysts", "sales", Value::Null);
    let sales_v2 = find("acme-analysts", "sales", json!("v2"));
    let inventory = find("globex-analysts", "inventory", Value::Null);
    let ids = |list: Value| {
        let mut v: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_i64().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    let mut expected = vec![
        sales["id"].as_i64().unwrap(),
        sales_v2["id"].as_i64().unwrap(),
    ];
    expected.sort_unstable();

    assert_eq!(ids(admin.get("/grants?team=acme-analysts").await), expected);
    let on_sales = admin.get("/grants?workbook=sales").await;
    for g in [&sales, &sales_v2] {
        assert!(!by_id(&on_sales, &g["id"]).is_null(), "{g} in {on_sales}");
    }
    assert!(by_id(&on_sales, &inventory["id"]).is_null(), "{on_sales}");
    assert_eq!(
        ids(admin.get("/grants?workbook=inventory").await),
        [inventory["id"].as_i64().unwrap()]
    );
    assert_eq!(
        ids(admin.get("/grants?team=acme-analysts&workbook=sales").await),
        expected
    );
    assert_eq!(
        admin
            .get("/grants?team=acme-analysts&workbook=inventory")
            .await,
        json!([])
    );
    assert_eq!(admin.get("/grants?team=no-such-team").await, json!([]));
    assert_eq!(
        admin.get("/grants?workbook=no-such-workbook").await,
        json!([])
    );

    let cookie = app.open(&app.token().sign(), "sales").await;
    let res = admin
        .send(Method::DELETE, &format!("/grants/{}", sales["id"]), None)
        .await;
    assert_eq!(res.status(), 204);
    assert!(by_id(&admin.get("/grants").await, &sales["id"]).is_null());
    assert_eq!(admin.get("/grants").await.as_array().unwrap().len(), 3);
    session_fails(&app, &cookie, "sales", 403, "access_denied").await;
    refused(
        &app,
        Method::DELETE,
        &format!("/grants/{}", sales["id"]),
        None,
        404,
        "not_found",
    )
    .await;
    refused(
        &app,
        Method::DELETE,
        "/grants/999999",
        None,
        404,
        "not_found",
    )
    .await;
    refused(&app, Method::DELETE, "/grants/abc", None, 404, "not_found").await;
}

// ---- audit -----------------------------------------------------------------

const AUDIT_FIELDS: [&str; 10] = [
    "at",
    "event",
    "request_id",
    "client_id",
    "email",
    "workbook",
    "outcome",
    "code",
    "remote_addr",
    "note",
];

#[tokio::test]
async fn the_audit_log_lists_newest_first_with_every_field() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    app.clock.advance_secs(10);
    let bad = app
        .token()
        .email("bob@acme.example")
        .secret("nope-nope-nope-nope-nope-nope-nope")
        .sign();
    handshake_fails(&app, &bad, "orders", 401, "token_bad_signature").await;

    let entries = app.admin().audit("").await;
    assert!(entries.len() >= 3, "{entries:?}");
    for entry in &entries {
        for key in AUDIT_FIELDS {
            assert!(entry.get(key).is_some(), "{key} missing in {entry}");
        }
        assert!(
            matches!(entry["outcome"].as_str(), Some("allowed" | "denied")),
            "{entry}"
        );
        rfc3339_utc(&entry["at"]);
    }
    let times: Vec<i64> = entries.iter().map(|e| rfc3339_utc(&e["at"])).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    let newest = &entries[0];
    assert_eq!(newest["event"], "handshake", "{newest}");
    assert_eq!(newest["outcome"], "denied");
    assert_eq!(newest["code"], "token_bad_signature");
    assert_eq!(newest["workbook"], "orders");
    assert_eq!(rfc3339_utc(&newest["at"]), NOW + 10);
    assert_eq!(newest["remote_addr"], "127.0.0.1");
    assert!(
        newest["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{newest}"
    );

    let handshakes = app.admin().audit("event=handshake").await;
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    let allowed = &handshakes[1];
    assert_eq!(allowed["outcome"], "allowed", "{allowed}");
    assert_eq!(allowed["code"], Value::Null);
    assert_eq!(allowed["email"], "ana@acme.example");
    assert_eq!(allowed["client_id"], ACME_CLIENT);
    assert_eq!(allowed["workbook"], "sales");
    assert_eq!(allowed["remote_addr"], "127.0.0.1");
    assert_eq!(rfc3339_utc(&allowed["at"]), NOW);
    assert!(
        allowed["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_ne!(allowed["request_id"], newest["request_id"]);
}

#[tokio::test]
async fn the_audit_log_is_filtered_by_email_event_outcome_and_limit() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    handshake_fails(
        &app,
        &app.token().email("bob@acme.example").sign(),
        "orders",
        403,
        "access_denied",
    )
    .await;
    app.admin()
        .settings(json!({"company_separation": {"enabled": true}}))
        .await;
    let admin = app.admin();
    let all = admin.audit("limit=1000").await;

    let ana = admin.audit("email=ana@acme.example").await;
    assert!(!ana.is_empty());
    assert!(
        ana.iter().all(|e| e["email"] == "ana@acme.example"),
        "{ana:?}"
    );
    assert_eq!(admin.audit("email=ANA@Acme.Example").await, ana);

    let handshakes = admin.audit("event=handshake").await;
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    assert!(handshakes.iter().all(|e| e["event"] == "handshake"));

    let denied = admin.audit("outcome=denied").await;
    assert!(!denied.is_empty());
    assert!(
        denied.iter().all(|e| e["outcome"] == "denied"),
        "{denied:?}"
    );
    let allowed = admin.audit("outcome=allowed").await;
    assert!(
        allowed.iter().all(|e| e["outcome"] == "allowed"),
        "{allowed:?}"
    );
    assert_eq!(denied.len() + allowed.len(), all.len());

    let bob = admin.audit("event=handshake&outcome=denied").await;
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert_eq!(bob[0]["email"], "bob@acme.example");
    assert_eq!(bob[0]["code"], "access_denied");
    assert_eq!(
        admin
            .audit("event=handshake&outcome=allowed&email=bob@acme.example")
            .await,
        Vec::<Value>::new()
    );
    assert_eq!(admin.audit("event=settings_changed").await.len(), 1);
    assert_eq!(
        admin.audit("event=no_such_event").await,
        Vec::<Value>::new()
    );

    let one = admin.audit("limit=1").await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], all[0]);
    assert_eq!(admin.audit("limit=2").await, all[..2].to_vec());

    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "outcome=maybe",
        "colour=red",
    ] {
        refused(
            &app,
            Method::GET,
            &format!("/audit?{query}"),
            None,
            400,
            "validation_failed",
        )
        .await;
    }
}

/// The audit writer writes on its own, a linger after an entry, with no
/// reader's flush and no handshake's batch to carry it: the first entry
/// after a write must wake it (it sleeps without a due time until then).
#[tokio::test]
async fn an_audit_entry_reaches_the_database_without_a_flush() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let mut db = sqlx::SqliteConnection::connect(app.config.database.url.expose())
        .await
        .unwrap();
    // Two in turn: the second comes after the writer's first write, so
    // no flush at start-up (the first housekeeping run) can have taken it.
    for (n, team) in [(1, "first-audited"), (2, "second-audited")] {
        app.admin().post("/teams", json!({"name": team})).await;
        eventually(
            &format!("{team}'s entry written without a flush"),
            std::time::Duration::from_secs(10),
            async || {
                let written: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE event = 'admin_change'")
                        .fetch_one(&mut db)
                        .await
                        .map_err(|e| e.to_string())?;
                if written == n {
                    Ok(())
                } else {
                    Err(format!("{written} written"))
                }
            },
        )
        .await;
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn admin_writes_are_audited_as_admin_changes_with_the_request_id() {
    let app = seeded().await;
    let with_id = |method: Method, path: &str, id: &str| {
        app.http
            .request(method, app.url(&format!("/admin/api{path}")))
            .bearer_auth(&app.admin_token)
            .header("X-Request-Id", id.to_owned())
    };
    let res = with_id(Method::POST, "/teams", "my-req-1")
        .json(&json!({"name": "auditors"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], "my-req-1");
    let team: Value = res.json().await.unwrap();

    let changes = app.admin().audit("event=admin_change").await;
    let entry = changes
        .iter()
        .find(|e| e["request_id"] == "my-req-1")
        .unwrap_or_else(|| panic!("no admin_change with my-req-1 in {changes:?}"));
    assert_eq!(entry["outcome"], "allowed");
    assert!(
        entry["note"]
            .as_str()
            .unwrap_or_default()
            .contains("auditors"),
        "{entry}"
    );
    assert_eq!(changes[0], *entry, "the newest change");

    let res = with_id(
        Method::DELETE,
        &format!("/teams/{}", team["id"]),
        "my-req-2",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let changes = app.admin().audit("event=admin_change").await;
    assert_eq!(changes[0]["request_id"], "my-req-2", "{changes:?}");

    // Reads are not audited.
    let count = app.admin().audit("limit=1000").await.len();
    for path in [
        "/settings",
        "/teams",
        "/users",
        "/clients",
        "/grants",
        "/workbooks",
        "/workspaces",
        "/account-types",
        "/audit",
        "/explain?email=ana@acme.example&workbook=sales",
    ] {
        let res = with_id(Method::GET, path, "my-read-1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let after = app.admin().audit("limit=1000").await;
    assert_eq!(after.len(), count, "reads add no entry");
    assert!(after.iter().all(|e| e["request_id"] != "my-read-1"));
}

#[tokio::test]
async fn the_audit_log_never_contains_a_secret_or_a_token() {
    let app = seeded().await;
    let admin = app.admin();
    let created = admin
        .post(
            "/clients",
            json!({"client_id": "portal", "name": "Portal", "allowed_teams": ["acme-analysts"]}),
        )
        .await;
    let portal = created["secret"].as_str().unwrap().to_owned();
    let kept = "kept-secret-0123456789-abcdefghijklmnop".to_owned();
    admin
        .post(
            "/clients",
            json!({"client_id": "kept", "name": "Kept", "secret": kept}),
        )
        .await;
    let rotated = admin
        .expect(Method::POST, "/clients/portal/rotate", None, 200)
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme_new = admin
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            Some(json!({"grace_secs": 600})),
            200,
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut tokens = Vec::new();
    let ok = app.token().sign();
    app.open(&ok, "sales").await;
    tokens.push(ok);
    let ok_new = TokenBuilder::new(ACME_CLIENT, &acme_new, app.clock.unix()).sign();
    app.open(&ok_new, "sales").await;
    tokens.push(ok_new);
    let portal_token = TokenBuilder::new("portal", &rotated, app.clock.unix())
        .email("pat@acme.example")
        .sign();
    app.open(&portal_token, "sales").await;
    tokens.push(portal_token.clone());
    handshake_fails(&app, &portal_token, "sales", 401, "token_replayed").await;
    let bad = app
        .token()
        .secret("wrong-wrong-wrong-wrong-wrong-wrong")
        .sign();
    handshake_fails(&app, &bad, "sales", 401, "token_bad_signature").await;
    tokens.push(bad);
    let denied = app.token().email("bob@acme.example").sign();
    handshake_fails(&app, &denied, "orders", 403, "access_denied").await;
    tokens.push(denied);

    let res = admin.send(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("handshake"), "{text}");
    let mut forbidden = vec![
        ACME_SECRET.to_owned(),
        GLOBEX_SECRET.to_owned(),
        portal,
        kept,
        rotated,
        acme_new,
        app.admin_token.clone(),
    ];
    for token in &tokens {
        forbidden.push(token.clone());
        let parts: Vec<&str> = token.split('.').collect();
        forbidden.push(parts[1].to_owned());
        forbidden.push(parts[2].to_owned());
    }
    for secret in &forbidden {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} appears in the audit log"
        );
    }
}

// ---- explain ---------------------------------------------------------------

fn reasons_text(e: &Value) -> String {
    e["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("reasons must be a list: {e}"))
        .iter()
        .map(|r| r.as_str().expect("a reason is a string").to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn explain_says_why_a_user_may_open_a_workbook() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    app.open(
        &app.token()
            .email("mia@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .claim("account_type", json!("Explorer"))
            .sign(),
        "orders",
    )
    .await;
    let admin = app.admin();

    let e = admin
        .get("/explain?email=ana@acme.example&workbook=sales")
        .await;
    let keys: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        sorted_strings(keys),
        sorted_strs(&["allowed", "level", "permissions", "code", "reasons"])
    );
    assert_eq!(e["allowed"], true, "{e}");
    assert_eq!(e["level"], "view");
    assert_eq!(sorted(&e["permissions"]), ["view"]);
    assert_eq!(e["code"], Value::Null);
    let why = reasons_text(&e);
    assert!(why.contains("acme-analysts"), "{why}");

    let e = admin
        .get("/explain?email=MIA@acme.example&workbook=sales")
        .await;
    assert_eq!(e["allowed"], true, "{e}");
    assert_eq!(e["level"], "explore");
    assert_eq!(
        sorted(&e["permissions"]),
        sorted_strs(&["view", "explore", "export"])
    );
    assert_eq!(e["code"], Value::Null);
    let why = reasons_text(&e);
    assert!(why.contains("acme-managers"), "{why}");
    assert!(why.contains("reports"), "the workspace is named: {why}");

    let e = admin
        .get("/explain?email=ana@acme.example&workbook=sales&tag=v2")
        .await;
    assert_eq!(e["allowed"], true, "{e}");
    assert_eq!(e["level"], "view");
    let why = reasons_text(&e);
    assert!(why.contains("acme-analysts"), "{why}");
    assert!(why.contains("v2"), "{why}");
}

#[tokio::test]
async fn explain_says_why_a_user_may_not_open_a_workbook() {
    let app = seeded().await;
    app.open(&app.token().sign(), "sales").await;
    app.open(
        &app.token()
            .email("mia@acme.example")
            .claim("teams", json!(["acme-managers"]))
            .sign(),
        "orders",
    )
    .await;
    let admin = app.admin();
    let denied = |e: &Value, code: &str| {
        assert_eq!(e["allowed"], false, "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e["level"], Value::Null, "{e}");
        assert_eq!(e["permissions"], json!([]), "{e}");
        assert!(!reasons_text(e).is_empty(), "{e}");
    };

    let e = admin
        .get("/explain?email=ana@acme.example&workbook=orders")
        .await;
    denied(&e, "access_denied");
    let e = admin
        .get("/explain?email=ana@acme.example&workbook=inventory")
        .await;
    denied(&e, "access_denied");
    let e = admin
        .get("/explain?email=ana@acme.example&workbook=no-such-workbook")
        .await;
    denied(&e, "access_denied");
    // mia's team has the published version through the workspace, not v2.
    let e = admin
        .get("/explain?email=mia@acme.example&workbook=sales&tag=v2")
        .await;
    denied(&e, "access_denied");
    let e = admin
        .get("/explain?email=ana@acme.example&workbook=sales&tag=v9")
        .await;
    denied(&e, "access_denied");

    let ana = user_id_of(&app, "ana@acme.example").await;
    admin
        .patch(&format!("/users/{ana}"), json!({"status": "deactivated"}))
        .await;
    let e = admin
        .get("/explain?email=ana@acme.example&workbook=sales")
        .await;
    denied(&e, "user_deactivated");

    admin.settings(json!({"auto_provisioning": false})).await;
    let e = admin
        .get("/explain?email=nobody@acme.example&workbook=sales")
        .await;
    denied(&e, "user_not_provisioned");

    for query in [
        "workbook=sales",
        "email=nope&workbook=sales",
        "email=&workbook=sales",
        "email=ana@acme.example",
        "email=ana@acme.example&workbook=sales&colour=red",
    ] {
        refused(
            &app,
            Method::GET,
            &format!("/explain?{query}"),
            None,
            400,
            "validation_failed",
        )
        .await;
    }
}
